"""The demo's steps in the reduced configuration: every artifact exists and is valid; reruns skip."""
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    from alage_edge.demo import DemoConfig, run_demo

    out = tmp_path_factory.mktemp("demo")
    assert run_demo(DemoConfig(out=str(out), profile="quick", progress=False)) == 0
    return out


def test_demo_writes_valid_artifacts(demo_dir):
    from PIL import Image

    from alage_edge.manifest import Manifest

    man = Manifest.load(demo_dir / "bundle")
    man.verify()  # every file matches its sha256
    kinds = {a.key for a in man.artifacts()}
    assert {"onnx-fp32", "openvino-fp32", "openvino-fp16", "openvino-int8", "qdq-int8-s8s8", "qdq-int8-u8s8"} <= kinds
    compare = json.loads((demo_dir / "compare.json").read_text())
    assert compare["attention"]["mae"] > 0 and "box_hit_mean" in compare["attention"]
    parity = json.loads((demo_dir / "parity.json").read_text())
    assert {r["run"] for r in parity["rows"]} >= {"onnxruntime-fp32", "openvino-int8-openvino"}
    bench = json.loads((demo_dir / "bench.json").read_text())
    assert {r["batch"] for r in bench["rows"]} == {1, 8} and bench["machine"]["cores"]
    assert any(r["run"] == "torch-fp32" and r["speedup"] == 1.0 for r in bench["rows"])
    for md in ("compare.md", "parity.md", "bench.md", "summary.md"):
        assert "|" in (demo_dir / md).read_text(), md
    for png in ("faces.png", "bench.png", "curves-al_resnet18.png", "curves-resnet18.png"):
        with Image.open(demo_dir / png) as im:
            im.verify()
    check = json.loads((demo_dir / "trtcheck.json").read_text())
    assert {"global.onnx", "attention.onnx", "alnet.onnx"} <= set(check["graphs"])  # every graph was checked
    assert [f for f in check["findings"] if f["severity"] == "error"] == []


def test_demo_second_run_reuses_what_is_up_to_date(demo_dir, capsys):
    from alage_edge.demo import DemoConfig, run_demo

    assert run_demo(DemoConfig(out=str(demo_dir), profile="quick", progress=False)) == 0
    out = capsys.readouterr().out
    assert out.count("up to date") >= 7
    steps = (demo_dir / "summary.md").read_text().split("## Steps")[1]  # what each skipped step cost when it ran
    assert "- train-al_resnet18: up to date (" in steps and " s when it ran)" in steps


def test_a_changed_preset_is_not_taken_as_up_to_date(demo_dir, monkeypatch, capsys):
    """The training step's stamp holds the preset's content: a preset that changed since the run is
    trained again, and the run of the old settings there is kept, with a message saying what to do."""
    from alage_edge.demo import DemoConfig, run_demo
    from alage_edge.train import presets
    from alage_edge.train.trainer import RunMismatch

    tiny = presets.PRESETS["tiny"]
    monkeypatch.setitem(presets.PRESETS, "tiny", {**tiny, "model": {**tiny["model"], "hidden": 48}})
    before = (demo_dir / "al_resnet18" / "best.pt").read_bytes()
    with pytest.raises(RunMismatch, match="other settings.*The demo keeps that run: move .*al_resnet18 away"):
        run_demo(DemoConfig(out=str(demo_dir), profile="quick", progress=False))
    assert "[1] train al_resnet18" in capsys.readouterr().out
    assert (demo_dir / "al_resnet18" / "best.pt").read_bytes() == before


def test_the_results_page_is_generated_from_the_runs_own_files(demo_dir, tmp_path):
    from alage_edge.tools.report import main

    assert main([str(demo_dir), "--out", str(tmp_path / "results.md")]) == 0
    text = (tmp_path / "results.md").read_text()
    machine = json.loads((demo_dir / "bench.json").read_text())["machine"]
    assert machine["cpu"] in text and "python -m alage_edge.tools.report" in text
    assert (demo_dir / "compare.md").read_text().strip().splitlines()[0] in text  # the run's own table
