"""The runtime API: the same ages on every CPU backend, preprocessing, bad input, threads, faces, CLI."""
import io
import json
import threading

import numpy as np
import pytest

from alage_edge import AgeEstimator
from alage_edge.backends import BackendError
from alage_edge.images import ImageError, load_image
from alage_edge.manifest import BundleError, Manifest
from alage_edge.preprocess import PreprocessSpec, normalize

CPU_BACKENDS = ["torch", "onnxruntime", "openvino"]


def _available(name):
    from alage_edge.backends import backend_class

    return backend_class(name).is_available()[0]


@pytest.fixture(scope="module")
def estimators(trained_bundle):
    out = {b: AgeEstimator.load(trained_bundle, backend=b, precision="fp32") for b in CPU_BACKENDS if _available(b)}
    yield out
    for e in out.values():
        e.close()


def test_same_ages_on_every_cpu_backend(estimators, synth_images):
    assert {"torch", "onnxruntime"} <= set(estimators)
    ages = {b: np.array([r.age for r in e.predict(synth_images)]) for b, e in estimators.items()}
    for b, a in ages.items():
        assert np.abs(a - ages["torch"]).max() < 0.05, b
    boxes = {b: np.stack([r.attention_boxes for r in e.predict(synth_images)]) for b, e in estimators.items()}
    for b, bx in boxes.items():
        assert np.abs(bx - boxes["torch"]).max() < 0.05, b  # pixels


def test_auto_says_which_backend_and_why(trained_bundle):
    est = AgeEstimator.load(trained_bundle)
    assert est.backend.name in ("openvino", "onnxruntime", "torch")
    assert "tensorrt" in est.backend.why and "chosen" in est.backend.why[est.backend.name]


def test_result_fields(estimators, synth_images):
    r = estimators["onnxruntime"].predict(synth_images[0])[0]
    assert 0 <= r.age <= 100 and r.std > 0
    assert r.distribution.shape == (101,) and abs(r.distribution.sum() - 1) < 1e-6
    assert r.group_probs.shape == (8,) and r.group in ("0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60+")
    assert r.attention_boxes.shape == (3, 4) and np.allclose(r.face_box, [0, 0, 128, 128])
    json.dumps(r.to_dict())


def test_inputs_of_every_kind(estimators, synth_images, tmp_path):
    from PIL import Image

    est = estimators["onnxruntime"]
    img = synth_images[1]
    path = tmp_path / "face.png"
    Image.fromarray(img).save(path)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    rs = est.predict([str(path), path, buf.getvalue(), img, Image.fromarray(img)])
    assert np.ptp([r.age for r in rs]) < 1e-4
    # a bigger picture: boxes come back in its own pixels
    big = np.asarray(Image.fromarray(img).resize((256, 256), Image.BILINEAR))
    r = est.predict(big)[0]
    assert np.allclose(r.face_box, [0, 0, 256, 256]) and r.attention_boxes.max() <= 256


def test_infer_arrays_and_batching(estimators, synth_images):
    est = estimators["onnxruntime"]
    x = normalize(np.stack(synth_images), est.spec)
    out = est.infer(x)
    assert out["fused_logits"].shape == (6, 101) and out["boxes"].shape == (6, 3, 4) and out["age"].shape == (6,)
    one_by_one = np.array([est.infer(x[i:i + 1])["age"][0] for i in range(6)])
    assert np.abs(one_by_one - out["age"]).max() < 1e-3
    many = est.predict(synth_images * 4, batch_size=5)  # 24 images in batches of 5
    assert len(many) == 24 and abs(many[6].age - many[0].age) < 1e-3


def test_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    import alage_edge.images as pre

    path = tmp_path / "huge.png"
    Image.new("RGB", (3000, 3000)).save(path)
    monkeypatch.setattr(pre, "MAX_PIXELS", 1_000_000)
    with pytest.raises(ImageError, match="huge.png: 3000x3000 pixels is larger than the limit"):
        load_image(path)


def test_decoding_variants(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    # EXIF orientation 6 (rotate 90 clockwise to view)
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    assert load_image(tmp_path / "rot.jpg").shape == (30, 20, 3)
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").shape == (20, 30, 3)
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 255, np.uint8)])).save(tmp_path / "rgba.png")
    assert np.array_equal(load_image(tmp_path / "rgba.png"), rgb)
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(tmp_path / "deep.png")
    g = load_image(tmp_path / "deep.png")
    assert g.dtype == np.uint8 and np.abs(g[:, :, 0].astype(int) - rgb[:, :, 0]).max() <= 1
    assert np.array_equal(load_image(rgb.astype(np.float32) / 255.0), rgb)


def test_training_eval_transform_equals_runtime(synth_images):
    pytest.importorskip("torch")
    from alage_edge.data.synth import SynthFaces
    from alage_edge.train.dataset import FaceDataset

    spec = PreprocessSpec(size=48)
    faces = SynthFaces(4, seed=2, size=64, split="test")
    ds = FaceDataset(faces, spec, train=False)
    for i in range(4):
        x, *_ = ds[i]
        ref = spec.apply(faces.image(i))
        assert np.abs(x.numpy() - ref).max() < 1e-6


def test_eight_threads_give_sequential_results(estimators, synth_images):
    for name, est in estimators.items():
        want = [r.age for r in est.predict(synth_images)]
        got, errors = [None] * 8, []

        def work(k):
            try:
                got[k] = [r.age for r in est.predict(synth_images)]
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert not errors, (name, errors)
        assert all(np.allclose(g, want, atol=1e-5) for g in got), name


@pytest.mark.parametrize("detector", ["hog", "haar"])
def test_face_detection_on_a_real_photo(estimators, detector):
    pytest.importorskip("dlib" if detector == "hog" else "cv2")
    skd = pytest.importorskip("skimage.data")
    photo = skd.astronaut()
    rs = estimators["onnxruntime"].predict(photo, detect_faces=detector)
    assert len(rs) == 1 and rs[0].face.detector == detector
    x1, y1, x2, y2 = rs[0].face_box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # Eileen Collins' face
    corners = rs[0].square_corners()  # the attention boxes lie inside the region the model read
    lo, hi = corners.min(0) - 1, corners.max(0) + 1
    assert (rs[0].attention_boxes[:, :2] >= lo).all() and (rs[0].attention_boxes[:, 2:] <= hi).all()
    d = rs[0].to_dict()
    assert d["face"]["detector"] == detector and len(d["square_corners"]) == 4
    if detector == "hog":
        assert rs[0].face.aligned and rs[0].face.score > 0.3 and len(d["face"]["landmarks"]) == 5
    blank = estimators["onnxruntime"].predict(np.full((200, 200, 3), 127, np.uint8), detect_faces=detector)
    assert blank == [] and len(blank.no_face) == 1


def test_bundle_problems_are_refused(trained_bundle, tmp_path):
    import shutil

    with pytest.raises(BundleError, match="no such bundle folder"):
        AgeEstimator.load(tmp_path / "none")
    b = tmp_path / "b"
    shutil.copytree(trained_bundle, b)
    (b / "alnet.onnx").write_bytes(b"corrupted")
    with pytest.raises(BundleError, match="alnet.onnx: altered or truncated"):
        AgeEstimator.load(b, backend="onnxruntime", graph="fused")
    with pytest.raises(BackendError, match="onnxruntime does not run fp16"):
        AgeEstimator.load(trained_bundle, backend="onnxruntime", precision="fp16")
    with pytest.raises(BackendError, match="tensorrt: (tensorrt is not installed|no tensorrt fp16 artifact)"):
        AgeEstimator.load(trained_bundle, backend="tensorrt", precision="fp16")


def test_engine_for_another_system_is_refused():
    from alage_edge.backends.engine_key import engine_key, engine_name, mismatches, rebuild_hint

    key = engine_key("10.3.0", "Orin", "8.7", "fp16", 0, {"image": [[1, 3, 64, 64]] * 3}, "abc", "")
    assert mismatches(key, "10.3.0", "Orin", "8.7", "abc") == []
    bad = mismatches(key, "11.4.0", "NVIDIA H200", "9.0", "def")
    assert len(bad) == 4 and "built for '10.3.0'" in bad[0]
    assert "--precision fp16 --dla-core 0" in rebuild_hint("bundle", "fp16", 0)
    assert engine_name("global", "fp16", 0, key).startswith("global.fp16.dla0.")
    assert engine_name("global", "fp16", 0, key) != engine_name("global", "fp16", 0, {**key, "calibration": "x"})


def test_predict_cli(trained_bundle, synth_images, tmp_path, capsys):
    from PIL import Image

    from alage_edge.cli import main

    paths = []
    for i, img in enumerate(synth_images[:2]):
        paths.append(str(tmp_path / f"f{i}.png"))
        Image.fromarray(img).save(paths[-1])
    assert main(["predict", str(trained_bundle), *paths, "--backend", "onnxruntime", "--draw",
                 str(tmp_path / "drawn")]) == 0
    out = capsys.readouterr().out
    assert "age (years)" in out and "f0.png" in out
    assert Image.open(tmp_path / "drawn" / "f1.ages.png").size[0] >= 64
    assert main(["predict", str(trained_bundle), paths[0], "--json", "--backend", "onnxruntime"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["results"][0]["source"] == paths[0] and len(res["results"][0]["attention_boxes"]) == 3
    assert main(["predict", str(trained_bundle), str(tmp_path / "missing.png")]) == 4  # some inputs failed
    assert "missing.png: no such image file" in capsys.readouterr().err


def test_openvino_bf16_keeps_the_attention_stream_f32(trained_bundle, synth_images):
    """bf16 on OpenVINO compiles the global stream with the bf16 hint and the attention stream with f32
    (its boxes and grid cannot address the detail image's pixels in bf16); an explicit hint applies to both."""
    if not _available("openvino"):
        pytest.skip("openvino is not installed")
    est = AgeEstimator.load(trained_bundle, backend="openvino", precision="bf16")
    try:
        be = est.backend
        assert be.hint_for("global") == "bf16" and be.hint_for("attention") == "f32"
        assert be.effective_hints["attention"] == "f32"
        assert be.effective_hints["global"] in ("bf16", "f32")  # f32 where the CPU has no bf16
        assert "bf16 global / f32 attention" in est.describe()
        assert all(np.isfinite(r.age) for r in est.predict(synth_images[:2]))
        be.effective_hints = {"global": "f32", "attention": "f32"}  # what a CPU without bf16 reports
        assert est.describe().endswith("runs f32 global / f32 attention: this CPU lacks bf16)")
    finally:
        est.close()
    forced = AgeEstimator.load(trained_bundle, backend="openvino", precision="bf16", hint="bf16")
    try:
        assert forced.backend.hint_for("attention") == "bf16"
        # what this CPU runs decides the text: ask OpenVINO what the CPU reports, never assume a CPU class
        import openvino as ov

        has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        ran = set(forced.backend.effective_hints.values())
        assert ran == ({"bf16"} if has_bf16 else {"f32"}), (has_bf16, ran)
        text = forced.describe()
        if has_bf16:
            assert text.endswith("precision hint bf16)"), text
        else:
            assert text.endswith("precision hint bf16, runs f32 global / f32 attention: this CPU lacks bf16)"), text
    finally:
        forced.close()


def test_openvino_runs_each_batch_size_on_a_static_shape_model(tiny_bundle):
    """The first STATIC_SIZES batch sizes each get a model compiled for that shape, later sizes the
    dynamic one, and every size gives what the dynamic model gives (split and fused graphs)."""
    if not _available("openvino"):
        pytest.skip("openvino is not installed")
    from alage_edge.backends.openvino import STATIC_SIZES

    spec = Manifest.load(tiny_bundle).preprocess
    sizes = [1, 3, 1, 2, 5, 4, 3, 6]
    xs = {n: spec.random_input(n, seed=n) for n in set(sizes)}
    for graph in ("split", "fused"):
        static = AgeEstimator.load(tiny_bundle, backend="openvino", precision="fp32", graph=graph)
        dynamic = AgeEstimator.load(tiny_bundle, backend="openvino", precision="fp32", graph=graph, shapes="dynamic")
        try:
            for n in sizes:
                a, b = static.infer(xs[n]), dynamic.infer(xs[n])
                np.testing.assert_allclose(a["fused_logits"], b["fused_logits"], atol=1e-4, rtol=1e-4)
                np.testing.assert_array_equal(a["boxes"], b["boxes"])
            compiled = static.backend._static
            assert all(sorted(c) == [1, 2, 3, 5][:STATIC_SIZES] for c in compiled.values()), compiled
            assert all(c == {} for c in dynamic.backend._static.values())
        finally:
            static.close()
            dynamic.close()
