"""Readers of the real formats on fixtures in those formats; split protocols; synth; metrics."""
import numpy as np
import pytest

from alage_edge.ages import GROUP_NAMES, age_to_group, decode
from alage_edge.data import DataError, open_dataset, open_splits, parse
from alage_edge.data import adience as adience_reader
from alage_edge.data.synth import REGIONS, SynthFaces, render, write_folder
from alage_edge.metrics import accuracy, attention_scores, cumulative_score, epsilon_error, iou, mae, one_off

from . import fixtures


def _subjects(s):
    return {r.subject for r in s.records}


def test_adience_folds_groups_and_skips(tmp_path):
    root = fixtures.adience(tmp_path / "adience")
    for fold in range(5):
        sp = open_splits(f"adience:{root},fold={fold}")
        test_users = _subjects(sp["test"])
        assert test_users == {f"user{fold}_{u}@N00" for u in range(3)}
        assert not test_users & (_subjects(sp["train"]) | _subjects(sp["val"]))  # never the test fold
        assert not _subjects(sp["train"]) & _subjects(sp["val"])  # validation carved by subject
        assert len(sp["train"]) + len(sp["val"]) == 4 * 12
    skips = sp["train"].skips
    assert skips.counts["missing image file"] == 5
    assert skips.counts["no usable age (None or malformed)"] == 10
    assert "fold_0_data.txt" in skips.summary()


def test_adience_age_texts():
    assert [adience_reader.parse_age(t) for t in ("(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)",
                                                  "(38, 43)", "(48, 53)", "(60, 100)")] == list(range(8))
    assert adience_reader.parse_age("(8, 23)") == age_to_group(15.5)
    assert adience_reader.parse_age("35") == age_to_group(35) and adience_reader.parse_age("None") is None
    with pytest.raises(DataError, match="fold_0_data.txt"):
        adience_reader.load("/nonexistent")


def test_morph_split_by_subject(tmp_path):
    csv_path = fixtures.morph(tmp_path / "morph")
    sp = open_splits(f"morph:{csv_path}")
    parts = [_subjects(sp[k]) for k in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert sum(len(sp[k]) for k in sp) == 60
    assert 0.05 < len(sp["test"]) / 60 < 0.45
    c = sp["train"].skips.counts
    assert c["missing image file"] == 1 and c["age not a number"] == 1 and c["age outside 0..100"] == 1


def test_fgnet_leave_one_person_out(tmp_path):
    root = fixtures.fgnet(tmp_path / "fgnet")
    from alage_edge.data import fgnet

    records, skips = fgnet.read(root)
    subjects = fgnet.subjects(records)
    assert subjects == ["001", "002", "003", "004", "005"]  # 5 folds, one per person
    assert skips.counts["file name not of the form 001A02.JPG"] == 1
    for k, s in enumerate(subjects):
        sp = open_splits(f"fgnet:{root},fold={k}")
        assert _subjects(sp["test"]) == {s}
        assert s not in _subjects(sp["train"]) | _subjects(sp["val"])
    assert sorted(r.age for r in open_splits(f"fgnet:{root},fold=1")["test"].records) == [2, 5, 10, 27]
    with pytest.raises(DataError, match="0..4"):
        open_splits(f"fgnet:{root},fold=5")


@pytest.mark.parametrize("layout", ["2015", "2016"])
def test_lap_layouts_and_votes(tmp_path, layout):
    root = fixtures.lap(tmp_path / f"lap{layout}", layout)
    sp = open_splits(f"lap:{root}")
    assert len(sp["train"]) + len(sp["val"]) == 12 and len(sp["test"]) == 6
    test = sp["test"]
    assert test.has_votes and np.allclose(test.ages(), [33.5, 34.5, 35.5, 36.5, 37.5, 38.5])
    assert test.skips.counts["missing image file"] == 3


def test_imdbwiki_cleaning_rules(tmp_path):
    pytest.importorskip("scipy")
    from alage_edge.data import imdbwiki

    root = fixtures.imdbwiki(tmp_path / "wiki")
    meta = imdbwiki.read_meta(root / "wiki.mat")
    records, removed, _ = imdbwiki.clean(meta, root)
    assert sorted(r.age for r in records) == [25, 29, 30]
    assert list(removed.values()) == [1, 1, 1, 1, 1]  # each rule removed exactly its row
    sp = open_splits(f"imdbwiki:{root}")
    assert sum(len(s) for s in sp.values()) == 3 and sp["train"].cleaning == removed


def test_csv_and_folder_and_npy(tmp_path):
    root = tmp_path / "plain"
    for i in range(10):
        fixtures.write_image(root / f"f{i}.png", i)
    (root / "labels.csv").write_text("path,age\n" + "".join(f"f{i}.png,{10 + i}\n" for i in range(10))
                                     + "nothere.png,30\n")
    sp = open_splits(f"csv:{root / 'labels.csv'}")
    assert sum(len(s) for s in sp.values()) == 10
    assert len(open_dataset(str(root))) == 10  # a bare folder: unlabelled images
    arr = np.zeros((4, 16, 16, 3), np.uint8)
    np.save(tmp_path / "x.npy", arr)
    ds = open_dataset(str(tmp_path / "x.npy"))
    assert len(ds) == 4 and ds.image(0).shape == (16, 16, 3)


def test_spec_errors():
    assert parse("adience:/d,fold=2") == ("adience", "/d", {"fold": "2"})
    assert parse("/some/dir")[0] == "folder" and parse("x.npy")[0] == "npy"
    with pytest.raises(DataError, match="needs a path"):
        parse("morph")
    with pytest.raises(DataError, match="unknown options"):
        open_splits("synth:n=10,colour=red")
    with pytest.raises(DataError, match="morph.csv: MORPH-2 CSV missing"):
        open_splits("morph:/nonexistent/morph.csv")  # "MORPH-2 CSV missing"


# -- synth -----------------------------------------------------------------------------------------
def test_synth_is_deterministic_per_seed_and_index():
    a, b = render(3, 17, 64), render(3, 17, 64)
    assert np.array_equal(a.image, b.image) and a.age == b.age and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(render(3, 18, 64).image, a.image)
    assert not np.array_equal(render(4, 17, 64).image, a.image)
    ds = SynthFaces(20, seed=3, size=64, split="val")
    assert np.array_equal(ds.ages(), [ds.sample(i).age for i in range(20)])
    pre = SynthFaces(20, seed=3, size=64, split="val").preload(workers=1)
    assert np.array_equal(pre.image(5), ds.image(5))


def test_synth_splits_do_not_overlap_and_cache(tmp_path):
    tr = SynthFaces(8, 0, 32, "train", cache_dir=str(tmp_path)).preload(workers=1)
    te = SynthFaces(8, 0, 32, "test", cache_dir=str(tmp_path)).preload(workers=1)
    assert not any(np.array_equal(tr.image(i), te.image(j)) for i in range(8) for j in range(8))
    assert len(list(tmp_path.glob("synth-*.npz"))) == 2
    again = SynthFaces(8, 0, 32, "train", cache_dir=str(tmp_path)).preload(workers=1)
    assert np.array_equal(again.image(3), tr.image(3))


def test_synth_boxes_follow_the_pose():
    upright = render(0, 5, 64, pose=0.0)
    expected = np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] for cx, cy, w, h in REGIONS])
    np.testing.assert_allclose(upright.boxes, expected, atol=1e-6)
    moved = [render(0, i, 64).boxes for i in range(10)]
    assert np.std([b[0, 0] for b in moved]) > 0.01  # pose moves the regions


def test_synth_v5_moves_the_regions_per_face_and_keeps_the_rest_of_v4():
    """v5 is the v4 face with its parts moved (shape, yaw, alignment error): deterministic per (seed, index),
    the same age, regions that move relative to the pose, and the age cue still inside its regions."""
    v4, v5 = render(2, 7, 96, version=4), render(2, 7, 96, version=5)
    assert v4.age == v5.age and not np.array_equal(v4.boxes, v5.boxes)
    again = render(2, 7, 96, version=5)
    assert np.array_equal(again.image, v5.image) and np.array_equal(again.boxes, v5.boxes)
    upright = [render(0, i, 64, pose=0.0, version=5).boxes for i in range(12)]
    assert np.std([b[:, 0] for b in upright], axis=0).min() > 0.01  # even an upright face moves its parts
    young, old = render(11, 3, 128, pose=0.0, age=5, version=5), render(11, 3, 128, pose=0.0, age=90, version=5)
    diff = np.abs(old.image.astype(float) - young.image.astype(float)).mean(axis=2)
    inside = np.zeros_like(diff, bool)
    for x1, y1, x2, y2 in (young.boxes * 128).astype(int):
        inside[y1:y2, x1:x2] = True
    chin = diff[int(0.78 * 128):int(0.84 * 128), int(0.4 * 128):int(0.6 * 128)]
    assert diff[inside].mean() > 5 * max(chin.mean(), 0.05)
    ds = SynthFaces(4, seed=2, size=64, version=5)
    assert "version=5" in ds.name and np.array_equal(ds.image(1), render(2, 1, 64, version=5).image)
    with pytest.raises(ValueError, match="synth version must be one of"):
        SynthFaces(4, version=6)
    with pytest.raises(DataError, match="synth version must be 4 or 5"):
        open_splits("synth:version=3")


def test_synth_age_lives_in_the_regions():
    """The same face drawn young and old differs inside the age regions, not on the chin."""
    ratios = []
    for index in range(6):
        young, old = render(11, index, 128, pose=0.0, age=5), render(11, index, 128, pose=0.0, age=90)
        diff = np.abs(old.image.astype(float) - young.image.astype(float)).mean(axis=2)
        inside = np.zeros_like(diff, bool)
        for x1, y1, x2, y2 in (young.boxes * 128).astype(int):
            inside[y1:y2, x1:x2] = True
        chin = diff[int(0.78 * 128):int(0.84 * 128), int(0.4 * 128):int(0.6 * 128)]
        ratios.append(diff[inside].mean() / max(chin.mean(), 0.05))
        assert np.array_equal(young.boxes, old.boxes)
    assert np.median(ratios) > 5


def test_synth_writes_the_csv_format(tmp_path):
    csv_path = write_folder(tmp_path / "s", 12, seed=1, size=32)
    sp = open_splits(f"csv:{csv_path}")
    total = sum(len(s) for s in sp.values())
    assert total == 12
    b = sp["train"].boxes()
    assert b is not None and b.shape[1:] == (5, 4)


# -- metrics ---------------------------------------------------------------------------------------
def test_metrics_against_hand_computed_values():
    pred, true = [10, 20, 33, 50], [12, 20, 30, 60]
    assert mae(pred, true) == pytest.approx((2 + 0 + 3 + 10) / 4)
    assert cumulative_score(pred, true, 5) == pytest.approx(3 / 4)
    assert epsilon_error([30], [30], [5]) == pytest.approx(0.0)
    assert epsilon_error([35], [30], [5]) == pytest.approx(1 - np.exp(-0.5))
    assert accuracy([1, 2, 3], [1, 2, 4]) == pytest.approx(2 / 3)
    assert one_off([1, 2, 5], [1, 3, 3]) == pytest.approx(2 / 3)
    assert iou(np.array([0, 0, 2, 2.0]), np.array([1, 1, 3, 3.0])) == pytest.approx(1 / 7)
    sc = attention_scores(np.array([[[0, 0, .2, .2], [.5, .5, .9, .9]]]), np.array([[[0, 0, .2, .2]]]))
    assert sc["box1_hit"] == 1.0 and sc["box2_hit"] == 0.0 and sc["all_boxes_hit"] == 0.0
    big = attention_scores(np.array([[[0, 0, .4, .4]]]), np.array([[[0, 0, .2, .2], [.3, .3, .5, .5]]]), 0.5)
    assert big["box1_hit"] == 0.0 and big["regions_covered"] == 0.5  # the first region inside, IoU 0.25


def test_dex_and_group_decoding():
    logits = np.full((1, 101), -50.0)
    logits[0, 30] = 50.0
    d = decode(logits, "dex")
    assert d["age"][0] == pytest.approx(30.0) and d["std"][0] == pytest.approx(0.0, abs=1e-6)
    assert GROUP_NAMES[d["group"][0]] == "25-32"
    two = np.full((1, 101), -50.0)
    two[0, [20, 40]] = 50.0
    d2 = decode(two, "dex")
    assert d2["age"][0] == pytest.approx(30.0) and d2["std"][0] == pytest.approx(10.0)
    assert list(age_to_group([0, 2, 3, 5, 14, 22, 23, 35, 36, 46, 57, 90])) == [0, 0, 0, 1, 2, 3, 4, 4, 5, 6, 7, 7]
    with pytest.raises(ValueError, match="shape"):
        decode(np.zeros((2, 8)), "dex")


@pytest.mark.parametrize("spec, trained_on, want", [
    ("synth", "synth:n=3000,seed=0,version=5", "synth:version=5"),
    ("synth:seed=3", "synth:n=3000,version=5", "synth:seed=3,version=5"),
    ("synth:version=4", "synth:version=5", "synth:version=4"),  # asked for: kept
    ("synth", "synth:n=3000", "synth"),  # trained on v4
    ("synth", None, "synth"),
    ("adience:/data/adience", "synth:version=5", "adience:/data/adience")])
def test_synth_calibration_and_checks_read_the_version_the_model_was_trained_on(spec, trained_on, want):
    from alage_edge.data.spec import like_training

    assert like_training(spec, trained_on) == want
