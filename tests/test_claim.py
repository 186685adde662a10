"""`alage-edge eval --claim` end to end on a tiny budget: trains, evaluates, writes the table and the plot."""
import json

import pytest

pytest.importorskip("torch")


@pytest.mark.slow  # two claim runs, ~20 s (make test-all)
@pytest.mark.parametrize("jobs", [1, 2])
def test_claim_trains_evaluates_and_reports(tmp_path, jobs):
    """jobs=2 trains in two spawned worker processes (which see the preset: it travels with each job)."""
    import alage_edge.train.claim as claim

    text = claim.run_claim(str(tmp_path), seeds=[0], n_train=48, n_test=16, epochs=(1, 1, 1), ablation=False,
                           latency_for=(), progress=False, jobs=jobs, preset="tiny",
                           only=["global@S", "AL@S detail2", "AL@S detail2 fixed boxes joint only"])
    rows = json.loads((tmp_path / "claim.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["global@S", "AL@S detail2", "AL@S detail2 fixed boxes joint only"]
    assert all(r["images"] == 16 for r in rows)
    configs = [json.loads((claim.run_dir(tmp_path, m, 0) / "config.json").read_text()) for m in
               ("AL@S detail2", "AL@S detail2 fixed boxes joint only")]
    assert configs[0]["epochs"] == [1, 1, 1] and configs[0]["box_lr_scale"] == 1.0  # staged, learned boxes
    assert configs[1]["epochs"] == [0, 0, 3] and configs[1]["box_lr_scale"] == 0.0  # every epoch joint
    assert configs[1]["joint_lr_scale"] == 1.0
    assert configs[0]["l1_heads"] == configs[1]["l1_heads"] == "fused"  # as those rows were measured
    rows = rows[:2]
    assert rows[1]["gflops"] > rows[0]["gflops"] > 0 and "box_hit_mean" in rows[1]
    assert "AL@S detail2 / global@S MAE per seed" in text and (tmp_path / "claim.png").stat().st_size > 1000
    assert json.loads((tmp_path / "claim.json").read_text())["jobs"] == jobs
    assert "aligned_mae" in rows[0] and 0 <= rows[1]["aligned_box_hit_mean"] <= 1
    assert "AL@S detail2: boxes on a true region (IoU >= 0.5), aligned faces:" in text
    measured = [r.pop("aligned_mae") for r in rows]  # a claim.json from before the aligned scores
    (tmp_path / "claim.json").write_text(json.dumps({"rows": rows}))
    again = claim.run_claim(str(tmp_path), seeds=[0], n_train=48, n_test=16, epochs=(1, 1, 1), ablation=False,
                            latency_for=(), progress=False, only=["global@S"], preset="tiny")  # kept, not redone
    assert "global@S" in again
    backfilled = json.loads((tmp_path / "claim.json").read_text())["rows"]
    assert [r["aligned_mae"] for r in backfilled] == pytest.approx(measured, abs=1e-6)  # added, same as before


@pytest.mark.parametrize("argv, message", [(["--only", "AL@S"], "--only 'AL@S' is not a claim row; choose from: global@S"),
                                           (["--jobs", "0"], "--jobs: expected a positive integer, got '0'")])
def test_claim_options_are_checked_before_any_training(tmp_path, capsys, argv, message):
    from alage_edge.train.cli import eval_main

    with pytest.raises(SystemExit) as e:
        eval_main(["--claim", "--out", str(tmp_path), *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_an_attention_row_with_its_own_global_stream_is_compared_with_both_baselines():
    from alage_edge.train.claim import OWN_BASELINE, summarise

    model, own = next(iter(OWN_BASELINE.items()))
    rows = [dict(model=m, seed=s, mae=mae, cs5=0.5, gflops=g) for m, s, mae, g in (
        ("global@S", 0, 10.0, 0.07), (own, 0, 12.0, 0.02), (model, 0, 4.0, 0.13), ("global@2S", 0, 3.0, 0.27))]
    text = summarise(rows)
    assert f"{model} / global@S MAE per seed: 0.400 (target <= 0.75 on every seed: met)" in text
    assert f"{model} / {own} MAE per seed: 0.333" in text
    assert f"{own} / global@S" not in text  # a baseline is not scored as an attention row
    assert f"{model} vs global@2S (1 / 1 seeds): MAE +33.3%, at 48% of its GFLOPs" in text
    rows += [dict(model=m, seed=1, mae=mae, cs5=0.5, gflops=g) for m, mae, g in (
        ("global@S", 10.0, 0.07), (own, 12.0, 0.02), (model, 3.0, 0.13), ("global@2S", 3.5, 0.27))]
    assert f"{model} vs global@2S (2 / 2 seeds): MAE +7.7%, at 48% of its GFLOPs (target within +10% at <= 60%: met)" \
        in summarise(rows)  # the mean over seeds against the mean over seeds: 3.5 / 3.25
    assert "global@2S / global@S" not in text  # the upper reference is not scored as an attention row


def test_latency_builds_what_an_interrupted_run_left_out(tiny_bundle, tmp_path):
    """A run killed after the fp32 IR left a bundle without INT8: the next one builds it, then times both."""
    pytest.importorskip("openvino")
    import shutil

    from alage_edge.convert.openvino import build
    from alage_edge.manifest import Manifest
    from alage_edge.train.claim import latency

    shutil.copytree(tiny_bundle, tmp_path / "bundle")
    build(tmp_path / "bundle", "fp32", progress=False)
    ms = latency(tmp_path / "no-checkpoint-needed.pt", tmp_path, "synth:n=64", str(tmp_path / "cache"))
    assert set(ms) == {"ov_fp32_ms", "ov_int8_ms"} and all(v > 0 for v in ms.values())
    assert {"openvino-fp32", "openvino-int8"} <= {a.key for a in Manifest.load(tmp_path / "bundle").artifacts()}


def test_the_claims_default_row_trains_what_the_compact_preset_trains(tmp_path):
    """The row the README calls the compact default is that preset, option for option (bar the claim's
    run folder, data and epochs); the rows before it differ from it only in the box side, then the L1 term's
    heads."""
    from alage_edge.model import model_config
    from alage_edge.train.claim import DEFAULT, EVERY_HEAD, train_config
    from alage_edge.train.trainer import TrainConfig

    def settings(cfg):
        d = cfg.to_dict()
        model = model_config(d.pop("arch"), d.pop("head"), **d.pop("model")).to_dict()
        return {k: v for k, v in d.items() if k not in ("out", "data", "seed", "resume", "cache", "progress")}, model

    row = train_config(tmp_path, DEFAULT, 0, "synth", (4, 4, 4), "c", False)
    assert settings(row) == settings(TrainConfig.from_preset("compact", arch="al_resnet18", epochs=(0, 0, 12)))
    px80_row = train_config(tmp_path, EVERY_HEAD, 0, "synth", (4, 4, 4), "c", False)
    px80 = settings(px80_row)
    assert px80[0] == settings(row)[0] and {**px80_row.model, "crop_size": 88} == row.model
    assert px80[1]["crop_size"] == 80
    before = settings(train_config(tmp_path, "AL@S detail2 exact crops global width 8 local width 12", 0, "synth",
                                   (4, 4, 4), "c", False))
    assert before[1] == px80[1] and {**before[0], "l1_heads": "all"} == px80[0]


def test_the_defaults_ablation_and_crop_rows_change_one_option_each():
    from alage_edge.train.claim import ABLATION, CROP88, EVERY_HEAD, MODELS

    arch, model, training = MODELS[EVERY_HEAD]
    expected = {"T=1": {"steps": 1}, "T=3": {"steps": 3}, "fusion=mean": {"fusion": "mean"},
                "crop 88": {"crop_size": 88}}
    rows = {m[len(EVERY_HEAD) + 1:]: MODELS[m] for m in ABLATION + (CROP88,) if m.startswith(EVERY_HEAD + " ")}
    assert set(rows) == set(expected)
    for change, (a, m, t) in rows.items():
        assert (a, t) == (arch, training) and m == {**model, **expected[change]} and m != model
