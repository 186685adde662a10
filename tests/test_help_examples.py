"""Every example printed by a subcommand's --help runs, unless it needs a user's data, a GPU or
TensorRT (those are listed with the reason). Examples run in a folder where `bundle/` and the
checkpoints they name exist (the cached trained fixture); training examples are parsed and turned
into a config, not trained (minutes each: the demo and test_train train for real)."""
import contextlib
import io
import re
import shlex
import shutil

import pytest

from alage_edge.cli import COMMANDS, main

NEEDS = {  # why an example cannot run here
    "/data/": "a user's data set", "calib_faces/": "a user's calibration folder", "*.png": "a shell glob", "other.onnx": "a user's ONNX file",
    "tensorrt": "TensorRT and a GPU", "torchrun": "several processes (test_train runs DDP)",
    "resnet34.pth": "an ImageNet checkpoint", "runs/imdbwiki": "an IMDB-WIKI run",
    "--resume": "an interrupted run", "alage-edge serve": "a server that runs until stopped (test_serving runs it)",
    "--against": "a second bundle (test_core runs --against)",
    "--url": "a running server (test_serving runs one)", "--claim": "the claim's training runs (about 1.5 h; test_claim runs it small)", "alage-edge demo": "the demo (make demo; test_demo runs --quick)",
}
SLOW = ("alage-edge bench",)  # run, but only in the slow suite


def examples():
    out = []
    for cmd in COMMANDS:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = buf.getvalue()
        for line in text.split("examples:", 1)[-1].splitlines():
            m = re.match(r"\s+(alage-edge .*?)(\s{2,}\(.*\))?$", line)
            if m:
                out.append((cmd, m.group(1).strip()))
    return out


EXAMPLES = examples()


def test_every_command_has_examples():
    assert {c for c, _ in EXAMPLES} == set(COMMANDS), "a command's --help shows no example"


@pytest.fixture(scope="module")
def workdir(trained_bundle, tmp_path_factory):
    d = tmp_path_factory.mktemp("examples")
    shutil.copytree(trained_bundle, d / "bundle")
    skd = pytest.importorskip("skimage.data")
    from PIL import Image

    Image.fromarray(skd.astronaut()[30:230, 150:350]).save(d / "face.jpg")  # real photos for predict's examples
    Image.fromarray(skd.astronaut()).save(d / "crowd.jpg")
    ckpt = trained_bundle.parent / "run" / "best.pt"
    for run in ("al18", "r18", "train"):
        (d / "runs" / run).mkdir(parents=True)
        shutil.copy(ckpt, d / "runs" / run / "best.pt")
    return d


@pytest.mark.parametrize("cmd,example", EXAMPLES, ids=[e for _, e in EXAMPLES])
def test_help_example_runs(cmd, example, workdir, monkeypatch, request):
    need = next((why for key, why in NEEDS.items() if key in example), None)
    if need:
        pytest.skip(f"needs {need}")
    if example.startswith(SLOW) and "not slow" in (request.config.getoption("-m") or ""):
        pytest.skip("slow example (make test-all runs it)")
    argv = shlex.split(example)[1:]
    monkeypatch.chdir(workdir)
    if cmd == "train":  # the example's model and preset, trained for real on a small set for one epoch
        import json

        out = workdir / f"example-{len(list(workdir.glob('example-*')))}"
        argv += ["--out", str(out), "--epochs", "0,0,1", "--data", "synth:n=32,n_val=16,n_test=16,seed=0",
                 "--batch-size", "16", "--no-progress"]
        assert main(argv) == 0, example
        cfg = json.loads((out / "config.json").read_text())
        assert (out / "best.pt").is_file() and cfg["arch"] in ("al_resnet18", "resnet18")
        if cfg["arch"] == "al_resnet18":
            from alage_edge.train.presets import PRESETS

            want = PRESETS["compact"]["model"]  # the compact preset's model, option for option
            assert {k: cfg["model"][k] for k in want} == want
        return
    if cmd == "convert" and "--data" in argv:
        argv += ["--calib-size", "40", "--calib-min", "16"]  # the example's flags, on a small set
    assert main(argv + (["--no-progress"] if cmd == "convert" else [])) == 0, example
