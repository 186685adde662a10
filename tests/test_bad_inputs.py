"""A standing catalogue of bad and odd inputs: every case must give a clear error naming the input and
what was expected, or a correct answer; never a traceback, never a plausible wrong answer. The suite
reports how many cases it tried (conftest prints it), so the count can only grow."""
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from alage_edge import AgeEstimator
from alage_edge.images import ImageError, load_image, to_rgb
from alage_edge.manifest import BundleError, Manifest

TRIED = []  # case ids, counted by conftest's terminal summary


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


FACE = (np.random.default_rng(0).uniform(0, 255, (96, 96, 3))).astype(np.uint8)


# -- decoding and arrays: (id, input, expected error text or None for "decodes to uint8 RGB") --------------
def _cases(tmp):
    (tmp / "text.jpg").write_text("not an image")
    (tmp / "dir").mkdir(exist_ok=True)
    Image.fromarray(FACE).save(tmp / "face.png")
    cmyk = tmp / "cmyk.jpg"
    Image.fromarray(FACE).convert("CMYK").save(cmyk)
    gif = tmp / "anim.gif"
    frames = [Image.fromarray(FACE), Image.fromarray(255 - FACE)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    grey16 = tmp / "dark16.png"
    Image.fromarray((np.arange(96 * 96).reshape(96, 96) % 200).astype(np.uint16)).save(grey16)
    return [
        ("empty bytes", b"", "empty byte string"),
        ("truncated png", _png(FACE)[:60], "not a readable image"),
        ("text as jpeg", tmp / "text.jpg", "not a readable image"),
        ("missing file", tmp / "nope.png", "no such image file"),
        ("directory", tmp / "dir", "no such image file"),
        ("1x1", np.zeros((1, 1, 3), np.uint8), "at least 8x8"),
        ("1x10000", np.zeros((1, 10000, 3), np.uint8), "at least 8x8"),
        ("nan array", np.full((16, 16, 3), np.nan, np.float32), "NaN"),
        ("inf array", np.full((16, 16, 3), np.inf, np.float32), "NaN or infinity"),
        ("float 0..255", np.full((16, 16, 3), 200.0, np.float32), r"values in \[0, 1\]"),
        ("negative int8", np.full((16, 16, 3), -5, np.int8), "ambiguous"),
        ("int32 pixels", np.full((16, 16, 3), 100, np.int32), "ambiguous"),
        ("5 channels", np.zeros((16, 16, 5), np.uint8), "HxWx3"),
        ("4-d array", np.zeros((1, 16, 16, 3, 1), np.uint8), "HxWx3"),
        ("grey", np.full((16, 16), 7, np.uint8), None),
        ("rgba", np.zeros((16, 16, 4), np.uint8), None),
        ("bool", np.ones((16, 16), bool), None),
        ("non-contiguous view", FACE[::2, ::-1], None),
        ("float in [0,1]", np.full((16, 16, 3), 0.5, np.float32), None),
        ("png bytes", _png(FACE), None),
        ("palette png", _palette_png(), None),
        ("cmyk jpeg", cmyk, None),
        ("animated gif", gif, None),
        ("dark 16-bit png", grey16, None),
        ("memoryview", memoryview(_png(FACE)), None),
    ]


def _palette_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(FACE).convert("P").save(buf, format="PNG")
    return buf.getvalue()


def test_decoding_catalogue(tmp_path):
    for cid, src, err in _cases(tmp_path):
        TRIED.append(cid)
        if err is None:
            out = load_image(src)
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, cid
        else:
            with pytest.raises(ImageError, match=err):
                load_image(src)


def test_sixteen_bit_is_sixteen_bit_whatever_the_values():
    """Issue: one pixel 254 -> 256 used to rescale a whole uint16 picture (age 51.3 -> 46.6)."""
    TRIED.append("uint16 254 vs 256")
    a = np.full((16, 16, 3), 200 * 257, np.uint16)
    b = a.copy()
    a[0, 0], b[0, 0] = 254, 256
    assert np.array_equal(to_rgb(a)[1:, 1:], to_rgb(b)[1:, 1:]) and to_rgb(a)[5, 5, 0] == 200


# -- the predict API --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def est(tiny_bundle):
    e = AgeEstimator.load(tiny_bundle, backend="onnxruntime")
    yield e
    e.close()


@pytest.mark.parametrize("cid,arg,err", [
    ("1-d empty array", np.zeros((0,)), "got 1 dimension"),
    ("dict", {"a.jpg": 1}, "got dict"),
    ("None", None, "got NoneType"),
    ("int", 5, "got int"),
])
def test_predict_refuses_what_is_not_pictures(est, cid, arg, err):
    TRIED.append(cid)
    with pytest.raises(ImageError, match=err):
        est.predict(arg)


@pytest.mark.parametrize("bs", [0, -5, 1.5, True])
def test_batch_size_must_be_a_positive_integer(est, bs):
    TRIED.append(f"batch_size {bs!r}")
    with pytest.raises(ValueError, match="batch_size"):
        est.predict(FACE, batch_size=bs)


def test_mixed_good_and_bad_inputs_skip_or_raise(est, tmp_path):
    TRIED.extend(["mixed raise", "mixed skip", "empty list", "generator"])
    items = [FACE, b"garbage", FACE]
    with pytest.raises(ImageError, match="<7 bytes>"):
        est.predict(items)
    res = est.predict(items, errors="skip")
    assert len(res) == 2 and [e.source for e in res.errors] == ["<7 bytes>"]
    assert est.predict([]) == []
    assert len(est.predict(x for x in [FACE, FACE])) == 2


def test_predict_streams_in_input_order(est):
    TRIED.append("predict_iter order")
    faces = [np.roll(FACE, k, axis=1) for k in range(11)]
    whole = [r.age for r in est.predict(faces, batch_size=3)]
    streamed = [r.age for r in est.predict_iter(iter(faces), batch_size=3)]
    assert streamed == whole


def test_synth_trained_bundle_warns_once(tmp_path, tiny_bundle):
    TRIED.append("synth warning")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    data = json.loads((b / "manifest.json").read_text())
    data["training_data"] = {"data": "synth:n=3000", "real_faces": False}
    (b / "manifest.json").write_text(json.dumps(data))
    e = AgeEstimator.load(b, backend="onnxruntime")
    with pytest.warns(UserWarning, match="procedurally drawn faces"):
        e.predict(FACE)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e.predict(FACE)  # once


# -- broken bundles ---------------------------------------------------------------------------------------
def _edit(bundle, tmp_path, fn):
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    data = json.loads((b / "manifest.json").read_text())
    fn(data, b)
    (b / "manifest.json").write_text(json.dumps(data))
    return b


def _files(d):
    return d["artifacts"][0]["files"]


BROKEN = [
    ("version null", lambda d, b: d.update(version=None), "'version' must be a positive integer"),
    ("version list", lambda d, b: d.update(version=[1]), "'version' must be a positive integer"),
    ("version abc", lambda d, b: d.update(version="abc"), "'version' must be a positive integer"),
    ("version 99", lambda d, b: d.update(version=99), "newer than this alage-edge"),
    ("no model", lambda d, b: d.pop("model"), "'model' is missing"),
    ("artifacts string", lambda d, b: d.update(artifacts="x"), "'artifacts' must be a JSON array"),
    ("std zero", lambda d, b: d["preprocess"].update(std=[0, 0, 0]), "std must be positive"),
    ("two-value mean", lambda d, b: d["preprocess"].update(mean=[0.5, 0.5]), "mean must be 3"),
    ("crop_fraction 5", lambda d, b: d["preprocess"].update(crop_fraction=5), "crop_fraction"),
    ("crop_fraction 0", lambda d, b: d["preprocess"].update(crop_fraction=0), "crop_fraction"),
    ("size 32 vs model", lambda d, b: d["preprocess"].update(size=32), "preprocess.size"),
    ("head bogus", lambda d, b: d["model"].update(head="years"), "model.head"),
    ("path ../", lambda d, b: _files(d).update({"global": "../outside.onnx"}), "leaves the bundle"),
    ("path /etc/passwd", lambda d, b: _files(d).update({"global": "/etc/passwd"}),
     "leaves the bundle"),
    ("path ../../../../etc/passwd", lambda d, b: _files(d).update({"global": "../../../../etc/passwd"}), "leaves the bundle"),
    ("symlink out", lambda d, b: (os.symlink("/etc/passwd", b / "evil.onnx"),
                                  _files(d).update({"global": "evil.onnx"})), "leaves the bundle"),
]


@pytest.mark.parametrize("cid,fn,err", BROKEN, ids=[c for c, _, _ in BROKEN])
def test_broken_bundles_are_refused_naming_the_field(tiny_bundle, tmp_path, cid, fn, err):
    TRIED.append(cid)
    b = _edit(tiny_bundle, tmp_path, fn)
    with pytest.raises(BundleError, match=err):
        Manifest.load(b)
        AgeEstimator.load(b, backend="onnxruntime", graph="split")


# -- the CLI ----------------------------------------------------------------------------------------------
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "alage_edge", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_json_is_one_document_with_errors_and_exit_code_4(tiny_bundle, tmp_path):
    TRIED.append("--json with a bad file")
    Image.fromarray(FACE).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_text("no")
    r = _cli("predict", tiny_bundle, tmp_path / "good.png", tmp_path / "bad.jpg", "--json", "--backend",
             "onnxruntime")
    assert r.returncode == 4, r.stderr
    doc = json.loads(r.stdout)  # the whole stdout is one JSON document
    assert len(doc["results"]) == 1 and doc["errors"][0]["source"].endswith("bad.jpg")
    assert "bad.jpg" in r.stderr


def test_draw_never_overwrites_inputs_or_other_results(tiny_bundle, tmp_path):
    TRIED.extend(["--draw into the inputs' folder", "--draw same stem twice"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(FACE).save(tmp_path / "a" / "face.png")
    Image.fromarray(255 - FACE).save(tmp_path / "b" / "face.png")
    (tmp_path / "a" / "face.ages.png").write_bytes(b"the user's own file")
    before = (tmp_path / "a" / "face.png").read_bytes()
    r = _cli("predict", tiny_bundle, tmp_path / "a" / "face.png", tmp_path / "b" / "face.png", "--draw",
             tmp_path / "a", "--backend", "onnxruntime")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a" / "face.png").read_bytes() == before
    assert (tmp_path / "a" / "face.ages.png").read_bytes() == b"the user's own file"
    assert (tmp_path / "a" / "face.ages-2.png").is_file() and (tmp_path / "a" / "face.ages-3.png").is_file()


@pytest.mark.parametrize("bs", ["0", "-5"])
def test_cli_batch_size(tiny_bundle, tmp_path, bs):
    TRIED.append(f"--batch-size {bs}")
    r = _cli("predict", tiny_bundle, "x.png", "--batch-size", bs)
    assert r.returncode == 2 and "positive integer" in r.stderr


# -- OpenVINO teardown (issue: a load/predict/del loop hung at iterations 32, 8 and < 10) ------------------
def test_openvino_load_predict_close_loop_does_not_hang(tiny_bundle):
    pytest.importorskip("openvino")
    TRIED.append("openvino 200x load/predict/close/del")
    code = f"""
import gc, numpy as np
from alage_edge import AgeEstimator
x = np.zeros((40, 40, 3), np.uint8)
for i in range(200):
    e = AgeEstimator.load({str(tiny_bundle)!r}, backend="openvino")
    e.predict([x, x, x])
    if i % 2:
        e.close()
    del e
    gc.collect()
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def _rehash(b, rel):
    from alage_edge.convert.bundle import updating

    with updating(b) as m:
        m.record_file(rel)


def test_a_graph_swapped_for_another_is_refused_even_with_its_hash_rerecorded(tiny_bundle, tmp_path):
    """Issue: alnet.onnx replaced by global.onnx (hash re-recorded) returned global logits as the fused result."""
    TRIED.append("alnet.onnx swapped for global.onnx")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    shutil.copyfile(b / "global.onnx", b / "alnet.onnx")
    _rehash(b, "alnet.onnx")
    with pytest.raises(BundleError, match="alnet.onnx: outputs .* do not match the manifest's fused stream"):
        AgeEstimator.load(b, backend="onnxruntime", graph="fused")


def test_a_checkpoint_of_another_model_is_refused(tiny_bundle, tmp_path):
    TRIED.append("model.pt of another size")
    torch = pytest.importorskip("torch")
    from alage_edge.backends import BackendError
    from alage_edge.model import build_model, save_checkpoint

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    torch.manual_seed(0)
    save_checkpoint(b / "model.pt", build_model("al_resnet18", img_size=32, width=8, local_width=8, crop_size=16,
                                               hidden=32))
    _rehash(b, "model.pt")
    with pytest.raises(BackendError, match="checkpoint's img_size is 32"):
        AgeEstimator.load(b, backend="torch")


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int8, np.int16, np.int32, np.bool_])


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=20)))
def test_any_array_converts_exactly_by_its_dtype_or_is_refused_clearly(arr):
    """Property: to_rgb either gives uint8 HxWx3 that depends only on the dtype's own range, or raises
    ImageError (never another exception, never a value-dependent rescale)."""
    TRIED.append("hypothesis arrays")
    try:
        out = to_rgb(arr)
    except ImageError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    a = arr if arr.ndim == 3 else arr[:, :, None]
    first = a[..., 0].astype(np.float64)
    if arr.dtype == np.uint16:
        want = np.round(first / 257.0)
    elif arr.dtype.kind == "f":
        want = np.round(first * 255.0)
    elif arr.dtype == np.bool_:
        want = first * 255
    else:
        want = first
    assert np.array_equal(out[..., 0], want.astype(np.uint8))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_decode_or_fail_with_an_image_error(data):
    TRIED.append("hypothesis bytes")
    try:
        out = load_image(data)
    except ImageError:
        return
    assert out.dtype == np.uint8 and out.shape[2] == 3


@pytest.mark.parametrize("cid,argv,err", [
    ("train --config bad json", ["train", "--config", "{bad"], "--config: not valid JSON"),
    ("export --config list", ["export", "--arch", "al_resnet18", "--config", "[1]", "--out", "x"],
     "--config: expected a JSON object"),
    ("bench --batch abc", ["bench", "b/", "--batch", "abc"], "--batch: expected positive integers"),
    ("bench --batch 0", ["bench", "b/", "--batch", "0,8"], "--batch: expected positive integers"),
    ("train --epochs x", ["train", "--epochs", "x"], "--epochs"),
])
def test_cli_arguments_are_refused_naming_the_flag(capsys, cid, argv, err):
    from alage_edge.cli import main

    TRIED.append(cid)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and err in capsys.readouterr().err
