"""The face front end on real faces (scikit-image's astronaut and LFW crops pasted into group pictures at
several scales and rotations): recall and false boxes against Haar, alignment accuracy measured by running
the landmark model again on the aligned crop, bad inputs, readable drawings."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from alage_edge.preprocess import InputSquare, PreprocessSpec, resize_square, warp_square
from tests.fixtures import group_picture, score_detections

pytest.importorskip("skimage")
dlib = pytest.importorskip("dlib", reason="the hog/cnn detectors need dlib-bin (the [faces] extra)")
faces = pytest.importorskip("alage_edge.faces")
SPEC = PreprocessSpec(size=224)
SEEDS = range(6)


@pytest.fixture(scope="module")
def pictures():
    return [group_picture(s) for s in SEEDS]


def test_hog_finds_at_least_what_haar_finds_with_no_more_false_boxes(pictures):
    pytest.importorskip("cv2")
    scores = {}
    for det in ("hog", "haar"):
        f = faces.finder(det)
        res = [score_detections([x.box for x in f.find(img)], truths) for img, truths in pictures]
        scores[det] = tuple(map(sum, zip(*res)))
    total = sum(len(t) for _, t in pictures)
    print(f"\nfaces found / false boxes of {total}: {scores}")
    assert scores["hog"][0] >= scores["haar"][0] and scores["hog"][1] <= scores["haar"][1], scores
    assert scores["hog"][0] >= 0.8 * total


def test_aligned_eyes_are_level_and_on_the_template(pictures):
    """Re-run the landmark model on each aligned crop: eyes level within 3 degrees and within 3 px of their
    template positions, on faces pasted at -18..+28 degrees."""
    worst_px, worst_deg, n = 0.0, 0.0, 0
    want = np.array(SPEC.eyes).reshape(2, 2) * SPEC.size
    for img, _ in pictures:
        for face, region in faces.find_faces(img, SPEC):
            assert face.aligned and face.landmarks.shape == (5, 2)
            again = faces.finder("hog").find(warp_square(img, region, SPEC.size))
            assert again, "the aligned crop lost its face"
            left, right = faces.eye_centres(again[0].landmarks)
            worst_px = max(worst_px, *np.hypot(*(np.stack([left, right]) - want).T))
            worst_deg = max(worst_deg, abs(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))))
            n += 1
    print(f"\n{n} aligned faces: worst eye offset {worst_px:.2f} px, worst tilt {worst_deg:.2f} deg")
    assert n >= 25 and worst_px <= 3 and worst_deg <= 3


def test_the_aligned_region_puts_the_eyes_on_the_template():
    left, right = np.array([100.0, 220.0]), np.array([180.0, 160.0])  # a head turned by -36.9 degrees
    g = SPEC.aligned_square(left, right, 400, 400)
    np.testing.assert_allclose(g.point(np.array(SPEC.eyes).reshape(2, 2)), [left, right], atol=1e-9)
    assert np.isclose(np.degrees(g.angle), -36.87, atol=0.01) and np.isclose(g.w, 100 / 0.28)
    upright = InputSquare(40.0, 30.0, 150.0, 150.0, 300, 300)
    np.testing.assert_allclose(upright.to_pixels(np.array([0.1, 0.2, 0.5, 0.6])), [55, 60, 115, 120])


def test_a_turned_warp_of_an_upright_region_is_the_plain_resize():
    from skimage import data

    img = data.astronaut()
    for g, size in [(InputSquare(150.0, 60.0, 140.0, 140.0, 512, 512), 224), (InputSquare(100, 40, 300, 300, 512, 512), 64)]:
        turned = InputSquare(g.x0, g.y0, g.w, g.h, 512, 512, 1e-12)
        diff = np.abs(warp_square(img, turned, size).astype(float) - resize_square(img, g, size).astype(float))
        assert diff.mean() < 4, diff.mean()  # the turned path reduces first, then warps: close, not equal


def test_a_face_in_a_large_picture_is_resampled_from_its_part_as_from_the_whole():
    """resize_square and warp_square hand Pillow only the part of the picture the filter reads (a face in a
    12-megapixel photo was a 36 MB copy per face); the pixels are the whole picture's, up to a rounding of
    the shifted coordinates (one level, on about 1.4% of values in random boxes)."""
    from PIL import Image

    rng = np.random.default_rng(3)
    img = np.ascontiguousarray(np.asarray(Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
                                          .resize((2400, 1800), Image.BICUBIC)))
    whole = Image.fromarray(img)
    cases = [(InputSquare(1003.3, 707.9, 421.7, 421.7, 2400, 1800), 224),  # a face, upright
             (InputSquare(0.4, 1449.2, 350.0, 350.0, 2400, 1800), 112),  # the filter reaches the picture's edge
             (InputSquare(2240.0, 10.0, 150.0, 150.0, 2400, 1800), 448)]  # magnified, in the corner
    for sq, size in cases:
        ref = np.asarray(whole.resize((size, size), Image.BILINEAR, box=sq.box())).astype(int)
        d = np.abs(resize_square(img, sq, size).astype(int) - ref)
        assert d.max() <= 1 and (d > 0).mean() < 0.05, (sq, d.max(), (d > 0).mean())
    # a turned square: against the same warp of a picture the square's box fills (read whole, as before)
    turned = InputSquare(1003.3, 707.9, 421.7, 421.7, 2400, 1800, 0.3)
    near = np.ascontiguousarray(img[650:1250, 900:1500])
    ref = warp_square(near, InputSquare(103.3, 57.9, 421.7, 421.7, 600, 600, 0.3), 224).astype(int)
    d = np.abs(warp_square(img, turned, 224).astype(int) - ref)
    assert d.max() <= 1 and (d > 0).mean() < 0.05 and ref.std() > 5, (d.max(), (d > 0).mean())


def test_normalize_by_lookup_is_the_float_arithmetic_bit_for_bit():
    from alage_edge.preprocess import PreprocessSpec, normalize

    rng = np.random.default_rng(0)
    for spec in (PreprocessSpec(size=64), PreprocessSpec(size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25))):
        for shape in ((64, 48, 3), (5, 32, 32, 3)):
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            x = normalize(a, spec)  # the uint8 lookup
            y = normalize(a.astype(np.float32), spec)  # the arithmetic
            assert x.dtype == np.float32 and x.shape == y.shape and x.flags["C_CONTIGUOUS"]
            assert np.array_equal(x, y)


# -- bad inputs -------------------------------------------------------------------------------------------
def _astronaut_face(scale: float = 1.0) -> np.ndarray:
    from PIL import Image
    from skimage import data

    face = Image.fromarray(data.astronaut()[27:227, 123:323])
    return np.asarray(face.resize((round(200 * scale),) * 2, Image.BICUBIC))


def test_no_face_tiny_face_and_huge_picture():
    hog = faces.finder("hog")
    rng = np.random.default_rng(0)
    assert hog.find(np.full((480, 640, 3), 127, np.uint8)) == []
    assert hog.find(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) == []
    small = np.full((600, 800, 3), 90, np.uint8)
    small[300:340, 400:440] = _astronaut_face(0.2)  # an 18 px face
    assert faces.FaceFinder("hog", min_face=30).find(small) == []
    huge = np.full((4000, 6000, 3), 90, np.uint8)
    huge[1000:1800, 2000:2800] = _astronaut_face(4.0)
    found = hog.find(huge)
    assert len(found) == 1 and 2000 < found[0].box[0] < found[0].box[2] < 2800


def test_grey_and_rgba_pictures_go_through_predict(tiny_bundle):
    from PIL import Image

    from alage_edge.estimator import AgeEstimator

    face = _astronaut_face()
    grey = np.asarray(Image.fromarray(face).convert("L"))
    rgba = np.asarray(Image.fromarray(face).convert("RGBA"))
    with AgeEstimator.load(tiny_bundle, backend="onnxruntime") as est, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.predict([grey, rgba, np.full((64, 64, 3), 50, np.uint8)], detect_faces=True)
    assert len(res) == 2 and [n.source for n in res.no_face] == ["#2 <array (64, 64, 3) uint8>"]
    assert all(r.face.aligned and r.face.score > 0.3 and r.face.detector == "hog" for r in res)


def test_without_dlib_hog_falls_back_to_haar_with_a_clear_message(monkeypatch):
    pytest.importorskip("cv2")
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    monkeypatch.setattr(faces, "_FINDERS", {})
    with pytest.warns(UserWarning, match=r"need dlib: pip install 'alage-edge\[faces\]'.*falling back to OpenCV"):
        f = faces.finder("hog")
    assert f.name == "haar"
    with pytest.raises(faces.FaceError, match="need dlib"):
        faces.finder("cnn")
    with pytest.raises(ValueError, match="detector must be one of hog, cnn, haar"):
        faces.FaceFinder("mtcnn")


def test_a_profile_is_framed_from_its_box():
    box = np.array([100.0, 100.0, 200.0, 200.0])
    collapsed = np.array([[150, 140], [148, 140], [142, 140], [145, 140], [170, 170]], float)
    frontal = np.array([[175, 140], [160, 140], [125, 140], [140, 140], [150, 170]], float)
    assert not faces._frontal(collapsed, box) and faces._frontal(frontal, box)


# -- drawings ---------------------------------------------------------------------------------------------
def test_labels_stay_inside_and_do_not_overlap():
    from PIL import Image, ImageDraw

    from alage_edge.draw import _font, _place

    d = ImageDraw.Draw(Image.new("RGB", (2000, 1500)))
    font = _font(44)
    placed = []
    boxes = [[0, 0, 80, 80], [10, 5, 90, 85], [1950, 1450, 2000, 1500], [20, 10, 100, 90], [1000, 700, 1100, 800]]
    for b in boxes:
        placed.append(_place(d, "33.3±4.4", font, np.array(b, float), (2000, 1500), placed, 4))
    for i, a in enumerate(placed):
        assert 0 <= a[0] and a[2] <= 2000 and 0 <= a[1] and a[3] <= 1500, a
        for b in placed[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    assert placed[0][3] - placed[0][1] > 40  # the font scaled up, not Pillow's 11 px default


def test_a_turned_input_square_is_drawn_with_its_turned_attention_boxes():
    """An aligned (turned) face: the input square is drawn in grey along its corners and the attention boxes
    turned with it; an upright one draws neither polygon."""
    from alage_edge.draw import annotate
    from alage_edge.preprocess import InputSquare
    from alage_edge.results import AgeResult

    def result(angle):
        sq = InputSquare(60, 60, 100, 100, 220, 220, angle)
        boxes = np.array([[0.2, 0.2, 0.4, 0.4]])
        return AgeResult(age=30.0, std=2.0, distribution=np.zeros(101), group="25-32", group_index=4,
                         group_probs=np.zeros(8), face_box=np.array(sq.box()), square=sq, boxes=boxes,
                         attention_boxes=sq.to_pixels(boxes))

    grey = np.array([200, 200, 200])
    blank = np.zeros((220, 220, 3), np.uint8)
    turned, upright = annotate(blank, [result(0.3)]), annotate(blank, [result(0.0)])
    assert (turned == grey).all(axis=2).sum() > 100  # the turned square's outline
    assert (upright == grey).all(axis=2).sum() == 0


def test_training_on_in_the_wild_pictures_aligns_them_like_predict(tmp_path):
    """A CSV set with align=hog: each picture's largest face, aligned by find_faces at the input size;
    a picture without a face raises an ImageError that names it (the trainer counts and names those)."""
    from PIL import Image

    from alage_edge.data import open_splits
    from alage_edge.images import ImageError

    face = Image.fromarray(_astronaut_face())
    rows = ["path,age,subject,split"]
    for k, angle in enumerate((0, 20, -25)):
        canvas = Image.new("RGB", (500, 400), (90, 100, 110))
        canvas.paste(face.rotate(angle, resample=Image.BICUBIC), (150 + 20 * k, 100))
        canvas.save(tmp_path / f"p{k}.jpg")
        rows.append(f"p{k}.jpg,{30 + k},s{k},train")
    Image.new("RGB", (300, 300), (90, 100, 110)).save(tmp_path / "empty.jpg")
    rows.append("empty.jpg,40,s9,train")
    (tmp_path / "set.csv").write_text("\n".join(rows) + "\n")
    train = open_splits(f"csv:{tmp_path / 'set.csv'},align=hog", size=224)["train"]
    assert "aligned by hog" in train.name
    want = np.array(SPEC.eyes).reshape(2, 2) * 224
    for i in range(3):
        crop = train.image(i)
        assert crop.shape == (224, 224, 3)
        left, right = faces.eye_centres(faces.finder("hog").find(crop)[0].landmarks)
        assert np.hypot(*(np.stack([left, right]) - want).T).max() < 4
    with pytest.raises(ImageError, match="empty.jpg: no face found by the hog detector"):
        train.image(3)


def test_haar_reads_big_photos_scaled_like_hog(pictures, monkeypatch):
    """Issue: haar on a 12000x8000 photo ran on every pixel (21.7 s, 5.5 GB, 24 boxes where the 1920x1280
    picture gave 3). It now sees the picture at DETECT_SIDE, as hog does, and answers in picture pixels."""
    cv2 = pytest.importorskip("cv2")
    from PIL import Image

    img, _ = pictures[0]
    big = np.asarray(Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.BILINEAR))
    seen = []
    real = cv2.CascadeClassifier.detectMultiScale
    monkeypatch.setattr(cv2.CascadeClassifier, "detectMultiScale",
                        lambda self, grey, **kw: (seen.append(grey.shape), real(self, grey, **kw))[1])
    haar = faces.FaceFinder("haar")
    small_boxes = sorted(f.box[0] for f in haar.find(img))
    big_boxes = sorted(f.box[0] / 4 for f in haar.find(big))
    assert max(seen[-1]) <= faces.DETECT_SIDE + 1, seen
    assert len(big_boxes) == len(small_boxes) and np.allclose(big_boxes, small_boxes, atol=12), (small_boxes,
                                                                                                   big_boxes)
