"""`alage-edge eval --claim` end to end on a tiny budget: trains, evaluates, writes the table and the plot."""
import json

import pytest

pytest.importorskip("torch")


@pytest.mark.parametrize("jobs", [1, 2])
def test_claim_trains_evaluates_and_reports(tmp_path, jobs):
    """jobs=2 trains in two spawned worker processes (which see the preset: it travels with each job)."""
    import alage_edge.train.claim as claim

    text = claim.run_claim(str(tmp_path), seeds=[0], n_train=48, n_test=16, epochs=(1, 1, 1), ablation=False,
                           latency_for=(), progress=False, only=["global@S", "AL@S detail2"], jobs=jobs,
                           preset="tiny")
    rows = json.loads((tmp_path / "claim.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["global@S", "AL@S detail2"] and all(r["images"] == 16 for r in rows)
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
