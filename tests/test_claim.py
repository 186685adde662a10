"""`alage-edge eval --claim`: trains, evaluates, compares with plain networks on accuracy and deployed latency."""
import json

import pytest

pytest.importorskip("torch")


@pytest.mark.slow  # two small claim runs (make test-all)
@pytest.mark.parametrize("jobs", [1, 2])
def test_claim_trains_evaluates_and_reports(tmp_path, jobs):
    """jobs=2 trains in two spawned worker processes (which see the preset: it travels with each job)."""
    import alage_edge.train.claim as claim

    rows_wanted = ["global@S w8", "AL static", "AL lstm"]
    text = claim.run_claim(str(tmp_path), seeds=[0], n_train=48, n_test=16, epochs=(0, 0, 1), latency=False,
                           progress=False, jobs=jobs, preset="tiny", only=rows_wanted)
    saved = json.loads((tmp_path / "claim.json").read_text())
    rows = saved["rows"]
    assert sorted(r["model"] for r in rows) == sorted(rows_wanted) and all(r["images"] == 16 for r in rows)
    assert saved["jobs"] == jobs and "version=5" in saved["data"]
    by = {r["model"]: r for r in rows}
    assert by["AL lstm"]["gflops"] > by["global@S w8"]["gflops"] > 0 and "box_hit_mean" in by["AL lstm"]
    assert "AL lstm / AL static MAE" in text and (tmp_path / "frontier.png").stat().st_size > 1000
    again = claim.run_claim(str(tmp_path), seeds=[0], n_train=48, n_test=16, epochs=(0, 0, 1), latency=False,
                            progress=False, only=["global@S w8"], preset="tiny")  # kept, not redone
    assert "global@S w8" in again
    assert json.loads((tmp_path / "claim.json").read_text())["rows"] == rows
    seconds = json.loads((tmp_path / "claim.json").read_text())["train_seconds"]
    claim.run_claim(str(tmp_path), seeds=[0], n_train=48, n_test=16, epochs=(0, 0, 1), latency=False,
                    progress=False, only=["global@S w8"], preset="tiny", retime=True)  # evaluated again, not trained
    saved = json.loads((tmp_path / "claim.json").read_text())
    assert saved["train_seconds"] == seconds and len(saved["rows"]) == len(rows)
    assert {r["model"]: r["mae"] for r in saved["rows"]} == {r["model"]: r["mae"] for r in rows}
    with pytest.raises(ValueError, match="use another --out"):  # other data in the same folder
        claim.run_claim(str(tmp_path), seeds=[0], n_train=48, n_test=16, synth_version=4, latency=False,
                        progress=False, only=["global@S w8"], preset="tiny")


@pytest.mark.parametrize("argv, message", [(["--only", "AL@S"], "--only 'AL@S' is not a claim row; choose from: global@S w8"),
                                           (["--jobs", "0"], "--jobs: expected a positive integer, got '0'"),
                                           (["--synth-version", "3"], "--synth-version: invalid choice: 3")])
def test_claim_options_are_checked_before_any_training(tmp_path, capsys, argv, message):
    from alage_edge.train.cli import eval_main

    with pytest.raises(SystemExit) as e:
        eval_main(["--claim", "--out", str(tmp_path), *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_retime_refuses_rows_that_were_never_trained(tmp_path):
    from alage_edge.train.claim import run_claim

    with pytest.raises(ValueError, match="--retime: global@S w8 seed 0 not trained in .*: run the claim without"):
        run_claim(str(tmp_path), seeds=[0], latency=False, progress=False, only=["global@S w8"], retime=True)
    assert not (tmp_path / "claim.json").exists()


def test_the_summary_says_whether_a_plain_network_dominates_the_default():
    from alage_edge.train.claim import summarise

    def row(model, seed, mae, b1, b8, hit=None):
        r = dict(model=model, seed=seed, mae=mae, cs5=0.5, gflops=0.1, deployed_b1_ms=b1, deployed_b8_ms=b8,
                 deployed_b1="int8", deployed_b8="int8")
        return {**r, "box_hit_mean": hit} if hit is not None else r

    rows = [row("AL lstm", 0, 4.0, 2.0, 8.0, 0.8), row("AL static", 0, 5.0, 1.5, 6.0),
            row("global@2S w16", 0, 3.9, 1.9, 7.9), row("global@S w8", 0, 9.0, 0.5, 2.0)]
    text = summarise(rows)
    assert "global@2S w16: MAE 3.90 vs 4.00, deployed b1 1.90 vs 2.00 ms, b8 7.90 vs 8.00 ms: DOMINATES" in text
    assert "global@S w8: MAE 9.00 vs 4.00" in text and "global@S w8" in text.split("DOMINATES")[-1]
    assert "AL lstm / AL static MAE: 0.800 (target <= 0.95: met)" in text
    assert "glimpses on a true region at IoU >= 0.5: 80% (target >= 70%: met)" in text
    rows[2] = row("global@2S w16", 0, 3.9, 2.1, 7.9)  # slower at batch 1: no longer dominates
    assert "DOMINATES" not in summarise(rows)


def test_latencies_timed_on_different_machines_are_never_compared(tmp_path):
    from alage_edge.train.claim import one_machine, plot, summarise

    def row(model, mae, b1, where):
        return dict(model=model, seed=0, mae=mae, cs5=0.5, gflops=0.1, deployed_b1_ms=b1, deployed_b8_ms=4 * b1,
                    deployed_b1="int8", deployed_b8="int8", timed_on=where)

    rows = [row("AL lstm", 4.0, 2.0, "EPYC [avx2], 2 cores"), row("global@2S w16", 3.9, 1.0, "Xeon [amx_int8], 2 cores")]
    text = summarise(rows)
    assert "DOMINATES" not in text and "does not dominate" not in text
    assert "latency timed on Xeon [amx_int8], 2 cores, AL lstm's on EPYC [avx2], 2 cores: not compared" in text
    rows[1]["timed_on"] = rows[0]["timed_on"]
    assert "global@2S w16: MAE 3.90 vs 4.00, deployed b1 1.00 vs 2.00 ms" in summarise(rows)
    rows[1]["timed_on"] = "elsewhere"
    kept, where = one_machine(rows)  # what the frontier plot draws: the row timed elsewhere has no latency there
    assert where == "EPYC [avx2], 2 cores" and kept[0] == rows[0] and kept[1]["mae"] == 3.9
    assert not any(k.startswith("deployed_") for k in kept[1])
    plot(rows, tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").is_file()


def test_the_claims_default_row_trains_what_the_compact_preset_trains(tmp_path):
    """The row the docs call the default is that preset, option for option (bar the claim's run folder,
    data and epochs), and the static row differs from it only in the selector and in annealing its glimpses'
    sampling noise (its better recipe: docs/experiments.md)."""
    from alage_edge.model import model_config
    from alage_edge.train.claim import DEFAULT, train_config
    from alage_edge.train.trainer import TrainConfig

    def settings(cfg):
        d = cfg.to_dict()
        model = model_config(d.pop("arch"), d.pop("head"), **d.pop("model")).to_dict()
        return {k: v for k, v in d.items() if k not in ("out", "data", "seed", "resume", "cache", "progress")}, model

    row = train_config(tmp_path, DEFAULT, 0, "synth", (0, 0, 12), "c", False)
    assert settings(row) == settings(TrainConfig.from_preset("compact", arch="al_resnet18", epochs=(0, 0, 12)))
    static = settings(train_config(tmp_path, "AL static", 0, "synth", (0, 0, 12), "c", False))
    assert {**static[0], "explore_anneal": False} == settings(row)[0] and static[0]["explore_anneal"]
    assert {**static[1], "selector": "lstm"} == settings(row)[1]
    wide = settings(train_config(tmp_path, "AL lstm 64px", 0, "synth", (0, 0, 12), "c", False))
    assert wide[0] == settings(row)[0] and {**wide[1], "crop_size": row.model["crop_size"]} == settings(row)[1]


def test_the_plain_networks_span_S_to_2S_at_two_widths():
    from alage_edge.model import model_config
    from alage_edge.train.claim import MODELS, S

    sizes = {}
    for name, (arch, opts) in MODELS.items():
        if not arch.startswith("al_"):
            cfg = model_config(arch, **{"global_size": S, **opts})
            sizes[name] = (cfg.global_size, cfg.width)  # the side the plain network reads
    assert sorted(sizes.values()) == sorted((s, w) for s in (S, 3 * S // 2, 2 * S) for w in (8, 16))


def test_deployed_latency_builds_what_an_interrupted_run_left_out(tiny_bundle, tmp_path):
    """A run killed after the fp32 IR left a bundle without INT8: the next one builds it, checks its MAE
    against fp32 and times every precision that held, batch 1 and 8."""
    pytest.importorskip("openvino")
    import shutil

    from alage_edge.convert.openvino import build
    from alage_edge.manifest import Manifest
    from alage_edge.train.claim import deployed

    shutil.copytree(tiny_bundle, tmp_path / "bundle")
    build(tmp_path / "bundle", "fp32", progress=False)
    row = deployed(tmp_path / "no-checkpoint-needed.pt", tmp_path, "synth:n=64,size=128", str(tmp_path / "cache"),
                   n_check=16)
    assert row["fp32_b1_ms"] > 0 and row["fp32_b8_ms"] > 0 and row["deployed_b1"] in ("fp32", "int8")
    assert {"openvino-fp32", "openvino-int8"} <= {a.key for a in Manifest.load(tmp_path / "bundle").artifacts()}
    assert ("int8_b1_ms" in row) == (abs(row["mae_ov_int8"] - row["mae_ov_fp32"]) <= 0.3)
