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
    save_checkpoint(b / "model.pt", build_model("al_resnet18", global_size=32, width=8, local_width=8, crop_size=16,
                                               hidden=32))
    _rehash(b, "model.pt")
    with pytest.raises(BackendError, match="checkpoint's global_size is 32"):
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


# == the standing catalogue, table-driven ===================================================================
# Each row states what must happen: the error text that names the input and what was expected, or None where
# the input is valid and must decode (then the result is checked exactly).

# -- arrays: every dtype x every layout -----------------------------------------------------------------------
ARRAY_DTYPES = {  # dtype -> None (decodes) or the error it must give on a well-shaped array
    "uint8": None, "bool": None, "uint16": None, "float16": None, "float32": None, "float64": None,
    "int8": "ambiguous", "int16": "ambiguous", "int32": "ambiguous", "int64": "ambiguous", "uint32": "ambiguous",
    "uint64": "ambiguous", "complex64": "unsupported image dtype", "object": "unsupported image dtype",
}
ARRAY_SHAPES = {  # shape -> None (a valid layout) or the error it must give, whatever the dtype
    (16, 16): None, (16, 16, 1): None, (16, 16, 2): None, (16, 16, 3): None, (16, 16, 4): None,
    (16, 16, 5): "HxW, HxWx1, HxWx3 or HxWx4", (16,): "HxW, HxWx1, HxWx3 or HxWx4",
    (2, 16, 16, 3): "HxW, HxWx1, HxWx3 or HxWx4", (4, 16, 3): "expected at least 8x8",
    (16, 7): "expected at least 8x8",
}


def _array(dtype: str, shape) -> np.ndarray:
    if dtype == "object":
        return np.full(shape, 1, dtype=object)
    return np.full(shape, 0.5 if dtype.startswith(("float", "complex")) else 1, dtype=dtype)


@pytest.mark.parametrize("dtype", list(ARRAY_DTYPES))
@pytest.mark.parametrize("shape", list(ARRAY_SHAPES), ids=str)
def test_array_catalogue_every_dtype_and_layout(dtype, shape):
    TRIED.append(f"array {dtype} {shape}")
    err = ARRAY_SHAPES[shape] or ARRAY_DTYPES[dtype]
    arr = _array(dtype, shape)
    if err:
        with pytest.raises(ImageError, match=err):
            to_rgb(arr, "the array")
        with pytest.raises(ImageError, match="^the array: "):  # the input is named first
            to_rgb(arr, "the array")
        return
    out = to_rgb(arr)
    want = {"uint8": 1, "bool": 255, "uint16": 0, "float16": 128, "float32": 128, "float64": 128}[dtype]
    assert out.shape == (*shape[:2], 3) and out.dtype == np.uint8 and (out == want).all()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("value,err", [(-0.01, r"values in \[0, 1\]"), (1.01, r"values in \[0, 1\]"),
                                       (255.0, r"values in \[0, 1\]"), (np.nan, "NaN or infinity"),
                                       (np.inf, "NaN or infinity"), (-np.inf, "NaN or infinity"), (0.0, None),
                                       (1.0, None)])
def test_float_pixels_outside_0_1_are_refused_one_bad_pixel_is_enough(dtype, value, err):
    TRIED.append(f"float {dtype} pixel {value}")
    arr = np.full((16, 16, 3), 0.5, dtype)
    arr[3, 4, 1] = value
    if err:
        with pytest.raises(ImageError, match=err):
            to_rgb(arr)
    else:
        assert to_rgb(arr)[3, 4, 1] == round(value * 255)


@pytest.mark.parametrize("value", [0, 1, 128, 255, 256, 257, 32768, 65535])
def test_sixteen_bit_values_map_by_the_dtype_range(value):
    TRIED.append(f"uint16 value {value}")
    assert to_rgb(np.full((8, 8, 3), value, np.uint16))[0, 0, 0] == round(value / 257)


# -- encoded pictures -------------------------------------------------------------------------------------------
def _encoded(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(FACE).save(buf, format=fmt, **kw)
    return buf.getvalue()


ENCODED = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")}


@pytest.mark.parametrize("fmt", list(ENCODED))
@pytest.mark.parametrize("damage", ["whole", "first 16 bytes", "half", "last byte gone", "one byte flipped early",
                                    "prefixed garbage", "zeros of its length"])
def test_encoded_picture_catalogue(fmt, damage):
    """Every format decodes whole; damaged, it decodes to a picture of the right size or raises ImageError
    (never another exception)."""
    TRIED.append(f"{fmt} {damage}")
    data = ENCODED[fmt]
    data = {"whole": data, "first 16 bytes": data[:16], "half": data[:len(data) // 2], "last byte gone": data[:-1],
            "one byte flipped early": data[:8] + bytes([data[8] ^ 0xFF]) + data[9:],
            "prefixed garbage": b"GARBAGE!" + data, "zeros of its length": bytes(len(data))}[damage]
    if damage == "whole":
        out = load_image(data)
        assert out.shape == FACE.shape
        if fmt in ("PNG", "BMP", "TIFF", "PPM"):  # lossless
            assert np.array_equal(out, FACE)
        return
    try:
        out = load_image(data, "the upload")
    except ImageError as e:
        assert str(e).startswith("the upload: ") and "object at 0x" not in str(e)
        return
    # a tolerant decoder filled what was missing, or the damaged header now describes another picture
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and min(out.shape[:2]) >= 8


def test_a_decompression_bomb_header_is_refused_before_decoding():
    TRIED.append("png header claiming 100000x100000")
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    with pytest.raises(ImageError, match="larger than the limit|too large"):
        load_image(png)
    with pytest.raises(ImageError, match="larger than the limit of 1000 pixels"):
        load_image(_png(FACE), max_pixels=1000)


# -- preprocessed tensors into est.infer -------------------------------------------------------------------------
def _tensor_cases(spec):
    s = spec.size
    lo, hi = spec.bounds()
    good = spec.random_input(2)
    cases = [
        ("float64 tensor", good.astype(np.float64), "float32"), ("float16 tensor", good.astype(np.float16), "float32"),
        ("uint8 tensor", np.zeros((2, 3, s, s), np.uint8), "float32"), ("int32 tensor", np.zeros((2, 3, s, s), np.int32),
                                                                         "float32"),
        ("3-d tensor", good[0], r"\(B, 3,"), ("NHWC tensor", np.ascontiguousarray(good.transpose(0, 2, 3, 1)), r"\(B, 3,"),
        ("one channel", good[:, :1], r"\(B, 3,"), ("size-1 side", good[:, :, :, :-1], r"\(B, 3,"),
        ("twice the size", np.zeros((1, 3, 2 * s, 2 * s), np.float32), r"\(B, 3,"),
        ("empty batch", good[:0], "empty batch"), ("a list", good.tolist(), "numpy array"),
        ("exact lower bounds", np.broadcast_to(lo[None, :, None, None], good.shape).astype(np.float32), None),
        ("exact upper bounds", np.broadcast_to(hi[None, :, None, None], good.shape).astype(np.float32), None),
        ("zeros", np.zeros_like(good), None), ("non-contiguous", np.asfortranarray(good), None),
    ]
    for value, err in ((np.nan, "contains NaN"), (np.inf, "contains infinity"), (-np.inf, "contains infinity"),
                       (1e30, "outside the preprocessed range"), (-1e30, "outside the preprocessed range")):
        x = good.copy()
        x[1, 2, 5, 5] = value
        cases.append((f"one {value} value", x, err))
    for c in range(3):
        for side, v in (("below", lo[c] - 0.5), ("above", hi[c] + 0.5)):
            x = good.copy()
            x[0, c, 0, 0] = v
            cases.append((f"channel {c} {side} its range", x, f"channel {c} has values in"))
    return cases


def test_preprocessed_tensor_catalogue(est):
    """est.infer refuses a tensor the model cannot have been given by its own preprocessing (issue: NaN and
    +-Inf gave age 7.88, 1e30 gave 73 with std 0) and says what range it expects."""
    from alage_edge.backends import InputError

    for cid, x, err in _tensor_cases(est.spec):
        TRIED.append(f"infer {cid}")
        if err is None:
            out = est.infer(x)
            assert np.isfinite(out["age"]).all(), cid
            continue
        with pytest.raises(InputError, match=err):
            est.infer(x)
    with pytest.raises(InputError, match=r"each channel within \[-2.118, 2.249\]"):
        est.infer(np.full((1, 3, est.spec.size, est.spec.size), 9.0, np.float32))


# -- manifests: every field, fuzzed ------------------------------------------------------------------------------
FUZZ_VALUES = {"null": None, "string": "x", "empty list": [], "object": {}, "negative": -1, "huge": 10 ** 12,
               "float": 0.5, "bool": True}
FUZZ_FIELDS = {  # where in manifest.json (path of keys)
    "version": ("version",), "model": ("model",), "model.head": ("model", "head"),
    "model.arch": ("model", "arch"), "preprocess": ("preprocess",), "preprocess.size": ("preprocess", "size"),
    "preprocess.mean": ("preprocess", "mean"), "preprocess.std": ("preprocess", "std"),
    "preprocess.crop_fraction": ("preprocess", "crop_fraction"), "preprocess.eyes": ("preprocess", "eyes"),
    "artifacts": ("artifacts",), "files": ("files",), "io": ("io",),
}


def _set(d, path, value):
    for k in path[:-1]:
        d = d.setdefault(k, {}) if isinstance(d, dict) else d
    if isinstance(d, dict):
        d[path[-1]] = value


@pytest.mark.parametrize("field", list(FUZZ_FIELDS))
@pytest.mark.parametrize("kind", list(FUZZ_VALUES))
def test_manifest_fuzz_every_field_is_refused_naming_it_or_still_answers(tiny_bundle, tmp_path, field, kind):
    """A fuzzed field either raises BundleError (never another exception) or the bundle still loads and
    answers finite ages: never a traceback, never a plausible wrong answer from a field it misread."""
    TRIED.append(f"manifest {field} = {kind}")
    b = _edit(tiny_bundle, tmp_path, lambda d, _: _set(d, FUZZ_FIELDS[field], FUZZ_VALUES[kind]))
    from alage_edge.backends import BackendError

    try:
        e = AgeEstimator.load(b, backend="onnxruntime")
    except (BundleError, BackendError) as err:  # naming the field, or the manifest and what it lacks
        names = (field.split(".")[-1], field.split(".")[0], "manifest.json", "artifact")
        assert any(n in str(err) for n in names), (field, kind, str(err))
        return
    try:
        assert np.isfinite(e.predict(FACE)[0].age)
        assert e.manifest.preprocess.size == 128  # nothing it answers with was misread
    finally:
        e.close()


@pytest.mark.parametrize("victim", ["manifest.json", "alnet.onnx", "global.onnx", "attention.onnx"])
@pytest.mark.parametrize("damage", ["emptied", "truncated", "one byte changed"])
def test_damaged_bundle_files_are_refused_naming_the_file(tiny_bundle, tmp_path, victim, damage):
    TRIED.append(f"{victim} {damage}")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    data = (b / victim).read_bytes()
    (b / victim).write_bytes({"emptied": b"", "truncated": data[: len(data) // 3],
                              "one byte changed": data[:40] + bytes([data[40] ^ 1]) + data[41:]}[damage])
    graph = "fused" if victim == "alnet.onnx" else "split"
    with pytest.raises(BundleError, match=victim.replace(".", r"\.")):
        AgeEstimator.load(b, backend="onnxruntime", graph=graph)


def test_global_and_attention_swapped_with_hashes_rerecorded_are_refused(tiny_bundle, tmp_path):
    TRIED.append("global.onnx and attention.onnx swapped")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    (b / "global.onnx").rename(b / "tmp.onnx")
    (b / "attention.onnx").rename(b / "global.onnx")
    (b / "tmp.onnx").rename(b / "attention.onnx")
    _rehash(b, "global.onnx")
    _rehash(b, "attention.onnx")
    with pytest.raises(BundleError, match="do not match the manifest's"):
        AgeEstimator.load(b, backend="onnxruntime", graph="split")


# -- checkpoints ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pickle that runs code", "truncated", "empty", "a text file", "a state dict only"])
def test_bad_checkpoints_are_refused_and_never_run_code(tiny_bundle, tmp_path, kind):
    torch = pytest.importorskip("torch")
    from alage_edge.backends import BackendError
    from alage_edge.model import build_model, save_checkpoint

    TRIED.append(f"model.pt {kind}")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    marker = tmp_path / "ran"
    if kind == "pickle that runs code":
        import pickle

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        (b / "model.pt").write_bytes(pickle.dumps({"state_dict": Evil()}))
    elif kind == "truncated":
        m = build_model("al_resnet18", global_size=64, width=8, local_width=8, crop_size=32, hidden=32)
        save_checkpoint(b / "model.pt", m)
        (b / "model.pt").write_bytes((b / "model.pt").read_bytes()[:500])
    elif kind == "empty":
        (b / "model.pt").write_bytes(b"")
    elif kind == "a text file":
        (b / "model.pt").write_text("not a checkpoint")
    else:
        torch.save(build_model("al_resnet18", global_size=64, width=8, local_width=8, crop_size=32,
                               hidden=32).state_dict(), b / "model.pt")
    _rehash(b, "model.pt")
    from alage_edge.model.checkpoint import CheckpointError

    with pytest.raises((BackendError, BundleError, CheckpointError), match="model.pt") as e:
        AgeEstimator.load(b, backend="torch")
    assert "weights_only" not in str(e.value)  # never the advice to load it unsafely
    assert not marker.exists(), "a checkpoint ran code"


# -- every CLI flag's bad values ------------------------------------------------------------------------------
CLI_BAD = [  # (argv, text the error must contain); each exits 2 before any work
    *[(["predict", "b/", "x.png", flag, v], flag) for flag in ("--batch-size", "--min-face")
      for v in ("0", "-3", "abc", "1.5")],
    (["predict", "b/", "x.png", "--backend", "cuda"], "--backend"),
    (["predict", "b/", "x.png", "--precision", "int4"], "--precision"),
    (["predict", "b/", "x.png", "--detector", "dnn"], "--detector"),
    (["predict", "b/", "x.png", "--detector", "cnn"], "--detector cnn needs --detect-faces"),
    *[(["bench", "b/", flag, v], flag) for flag in ("--n", "--iters") for v in ("0", "-1", "x")],
    *[(["bench", "b/", "--warmup", v], "--warmup") for v in ("-1", "x")],
    *[(["bench", "b/", "--batch", v], "--batch") for v in ("0", "1,,8", "1,-8", "a,b")],
    *[(["parity", "b/", "--n", v], "--n") for v in ("0", "-5", "ten")],
    *[(["convert", "b/", "--to", "openvino", flag, v], flag)
      for flag in ("--calib-size", "--calib-min") for v in ("0", "-1", "x")],
    *[(["convert", "b/", "--to", "tensorrt", "--workspace", v], "--workspace") for v in ("0", "-2", "nan", "inf")],
    *[(["convert", "b/", "--to", "tensorrt", "--dla-core", v], "--dla-core") for v in ("-1", "x")],
    *[(["convert", "b/", "--to", "tensorrt", "--batch", v], "--batch")
      for v in ("8,1,16", "1,8", "0,1,2", "1,8,x", "1,8,4")],
    (["convert", "b/", "--to", "openvino", "--max-drop", "-0.1"], "--max-drop"),
    (["convert", "b/", "--to", "onnx2"], "--to"),
    *[(["convert", "b/", "--to", "triton", flag, v], flag) for flag in ("--max-batch", "--instances")
      for v in ("0", "-1")],
    (["convert", "b/", "--to", "triton", "--max-delay-us", "-1"], "--max-delay-us"),
    (["export", "--arch", "al_resnet18", "--global-size", "0", "--out", "x"], "--global-size"),
    (["export", "--arch", "al_resnet18", "--opset", "20", "--out", "x"], "--opset"),
    *[(["train", flag, v], flag) for flag in ("--batch-size", "--jobs") for v in ("0", "-4", "x")],
    *[(["train", flag, v], flag) for flag in ("--lr",) for v in ("0", "-1", "nan", "inf", "x")],
    *[(["train", flag, v], flag) for flag in ("--weight-decay", "--l1", "--clip", "--joint-lr-scale",
                                                "--box-lr-scale", "--warmup-epochs") for v in ("-1", "nan", "x")],
    *[(["train", flag, v], flag) for flag in ("--workers", "--seed") for v in ("-1", "x")],
    *[(["train", "--epochs", v], "--epochs") for v in ("1,2", "-1", "a", "1,2,3,4")],
    (["train", "--optimizer", "adam"], "--optimizer"),
    (["train", "--amp", "yes"], "--amp"),
    *[(["serve", "b/", flag, v], flag) for flag in ("--http-port", "--grpc-port", "--metrics-port")
      for v in ("0", "70000", "x")],
    *[(["serve", "b/", "--threads", v], "--threads") for v in ("-1", "x")],
    (["serve", "b/", "--max-delay-us", "-5"], "--max-delay-us"),
    (["serve", "b/", "--instances", "0"], "--instances"),
]


@pytest.mark.parametrize("argv,err", CLI_BAD, ids=[" ".join(a) for a, _ in CLI_BAD])
def test_cli_catalogue_every_flag_refuses_bad_values_naming_it(capsys, argv, err):
    from alage_edge.cli import main

    TRIED.append("cli " + " ".join(argv))
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and err in capsys.readouterr().err


def test_draw_into_a_path_under_a_file_fails_before_any_work(tiny_bundle, tmp_path, capsys):
    from alage_edge.cli import main

    TRIED.append("--draw under a file")
    (tmp_path / "file.txt").write_text("x")
    Image.fromarray(FACE).save(tmp_path / "face.png")
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tiny_bundle), str(tmp_path / "face.png"), "--draw", str(tmp_path / "file.txt" / "out")])
    assert e.value.code == 2 and "is a file, expected a folder" in capsys.readouterr().err


def test_a_drawing_that_cannot_be_written_still_prints_the_results(tiny_bundle, tmp_path, capsys, monkeypatch):
    """Issue: --draw into an unwritable folder exited 2 with no JSON: the computed results were lost."""
    import alage_edge.draw as draw
    from alage_edge.cli import main

    TRIED.append("--draw write fails")
    Image.fromarray(FACE).save(tmp_path / "face.png")

    def refuse(path, rgb):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(draw, "save_png", refuse)
    code = main(["predict", str(tiny_bundle), str(tmp_path / "face.png"), "--json", "--draw", str(tmp_path / "out"),
                 "--backend", "onnxruntime"])
    out = capsys.readouterr()
    assert code == 2 and len(json.loads(out.out)["results"]) == 1
    assert "cannot write the drawn pictures" in out.err
