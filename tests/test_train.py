"""Training: loss goes down, staged freezing, kill-and-resume, DDP on gloo, counted skips, eval."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from alage_edge.model import load_checkpoint, read_checkpoint  # noqa: E402
from alage_edge.train.trainer import TrainConfig, Trainer, train, warm_start_attention  # noqa: E402

from .conftest import TINY  # noqa: E402

DATA = "synth:n=96,n_val=32,n_test=32,seed=3"


def _cfg(tmp_path, **kw):
    base = dict(arch="al_resnet18", model=dict(TINY), data=DATA, out=str(tmp_path / "run"), epochs=(1, 1, 1),
                batch_size=16, optimizer="adamw", lr=3e-3, l1=0.05, progress=False, cache=str(tmp_path / "cache"))
    base.update(kw)
    return TrainConfig(**base)


def _cli(args, env=None, cwd=None):
    e = {**os.environ, "ALAGE_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "alage_edge.train", *args], capture_output=True, text=True, env=e,
                          timeout=600, cwd=cwd)


def _kill_after_epochs(args, run_dir, epochs: int) -> int:
    """Start training, SIGKILL it from outside once metrics.json holds ``epochs`` rows; its return code."""
    e = {**os.environ, "ALAGE_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "alage_edge.train", *args], env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics, deadline = run_dir / "metrics.json", time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if len(json.loads(metrics.read_text())) >= epochs:
                proc.send_signal(signal.SIGKILL)
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return proc.wait()


def test_two_epochs_lower_the_loss_and_write_everything(tmp_path):
    cfg = _cfg(tmp_path, arch="resnet18", epochs=(2, 0, 0))  # a baseline trains sum(epochs) = 2 epochs
    train(cfg)
    hist = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(hist) == 2 and hist[1]["loss"] < hist[0]["loss"]
    assert hist[0]["images_per_s"] > 0 and "val_mae" in hist[0]
    for f in ("last.pt", "best.pt", "metrics.csv", "curves.png", "config.json"):
        assert (tmp_path / "run" / f).is_file(), f
    from PIL import Image

    assert Image.open(tmp_path / "run" / "curves.png").size[0] > 300
    m = load_checkpoint(tmp_path / "run" / "best.pt")
    assert m.cfg.arch == "resnet18" and m.checkpoint_meta["stage"] == "global"


def test_stages_freeze_the_global_stream(tmp_path):
    t = Trainer(_cfg(tmp_path, epochs=(1, 1, 0), stage="all"))
    t.fit()
    after_attention = read_checkpoint(tmp_path / "run" / "last.pt")
    assert after_attention["meta"]["stage"] == "attention"
    # replay: the global stream after the attention stage equals the one after the global stage
    t2 = Trainer(_cfg(tmp_path / "b", epochs=(1, 0, 0), stage="all"))
    t2.fit()
    g1 = {k: v for k, v in read_checkpoint(tmp_path / "b" / "run" / "last.pt")["state_dict"].items()
          if k.startswith("global_stream.")}
    for k, v in g1.items():
        assert torch.equal(v, after_attention["state_dict"][k]), k
    att_keys = [k for k in after_attention["state_dict"] if k.startswith("attention_stream.lstm")]
    assert att_keys and not torch.equal(after_attention["state_dict"][att_keys[0]],
                                        read_checkpoint(tmp_path / "b" / "run" / "last.pt")["state_dict"][att_keys[0]])


def test_box_lr_scale_zero_keeps_the_boxes_where_they_start(tmp_path):
    boxes = dict(TINY, selector="boxes")  # box regression: the only selector with box layers
    init = Trainer(_cfg(tmp_path / "i", model=boxes)).model.state_dict()
    Trainer(_cfg(tmp_path / "a", box_lr_scale=0.0, model=boxes)).fit()
    Trainer(_cfg(tmp_path / "b", model=boxes)).fit()
    fixed, free = (read_checkpoint(tmp_path / d / "run" / "last.pt")["state_dict"] for d in ("a", "b"))
    keys = [k for k in init if k.startswith("attention_stream.box_layers.")]
    assert keys and all(torch.equal(fixed[k], init[k]) for k in keys)
    assert any(not torch.equal(free[k], init[k]) for k in keys)
    with pytest.raises(ValueError, match="box_lr_scale must be a number >= 0, got -1"):
        Trainer(_cfg(tmp_path / "c", box_lr_scale=-1, model=boxes))
    with pytest.raises(ValueError, match="box_lr_scale applies to selector 'boxes'"):
        Trainer(_cfg(tmp_path / "d", box_lr_scale=0.0))  # an anchor selector has no box layers
    r = _cli(["train", "--box-lr-scale", "-2"])
    assert r.returncode == 2 and "argument --box-lr-scale: expected a number >= 0, got '-2'" in r.stderr


def test_the_compact_preset_trains_the_lstm_selector_and_flags_override_it():
    from alage_edge.train.cli import config_from_args, train_parser

    def cfg(*args):
        return config_from_args(train_parser().parse_args(list(args)))

    assert cfg("--preset", "compact").model.get("selector", "lstm") == "lstm"
    assert cfg("--preset", "compact").box_lr_scale == 1.0
    assert cfg("--preset", "compact", "--box-lr-scale", "0").box_lr_scale == 0.0
    assert cfg("--preset", "paper").box_lr_scale == 1.0 and cfg("--preset", "tiny").box_lr_scale == 1.0
    assert cfg().l1_heads == "fused" and cfg("--l1-heads", "all").l1_heads == "all"
    assert cfg("--preset", "compact").l1_heads == "all" and cfg("--preset", "compact", "--l1-heads", "fused").l1_heads == "fused"
    assert cfg("--preset", "compact").ema == 0.0 and cfg("--preset", "compact", "--ema", "0.99").ema == 0.99


@pytest.mark.parametrize("detail", [1, 2])
def test_warm_start_makes_fused_equal_global(detail):
    """Fused starts equal to global; the local CNN copies the global backbone only at detail scale 1
    (with a detail image it reads pixels the global backbone never saw)."""
    from alage_edge.model import build_model

    m = build_model("al_resnet18", **{**TINY, "detail_scale": detail}).eval()
    done = warm_start_attention(m)
    x = torch.randn(3, 3, 64 * detail, 64 * detail)
    with torch.no_grad():
        out = m(x)
    torch.testing.assert_close(out["fused_logits"], out["global_logits"])
    same = torch.equal(m.attention_stream.local.conv1.weight, m.global_stream.backbone.conv1.weight)
    assert same == (detail == 1) and ("local CNN <- global backbone" in done) == (detail == 1)


def test_kill_and_resume_gives_the_same_weights(tmp_path):
    args = ["--arch", "al_resnet18", "--preset", "tiny", "--epochs", "2,1,1", "--batch-size", "16", "--data", DATA,
            "--cache", str(tmp_path / "cache"), "--no-progress"]
    whole = _cli(args + ["--out", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr
    code = _kill_after_epochs(args + ["--out", str(tmp_path / "killed")], tmp_path / "killed", 1)
    assert code == -signal.SIGKILL, code  # killed from outside mid-schedule (after epoch 1 of 4 was saved)
    resumed = _cli(args + ["--out", str(tmp_path / "killed"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a = read_checkpoint(tmp_path / "whole" / "last.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "killed" / "last.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    hb = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb]


def test_a_write_killed_midway_leaves_the_old_checkpoint(tmp_path):
    from alage_edge import atomic
    from alage_edge.model import build_model, save_checkpoint

    path = save_checkpoint(tmp_path / "last.pt", build_model("resnet18", **TINY), meta={"epoch": 1})

    def crash(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_with(path, crash)
    assert read_checkpoint(path)["meta"]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.slow  # two torchrun processes (make test-all)
def test_ddp_with_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                        "-m", "train", "--arch", "al_resnet18", "--preset", "tiny", "--epochs", "1,1,0",
                        "--batch-size", "16", "--data", DATA, "--cache", str(tmp_path / "cache"), "--out", str(out),
                        "--no-progress"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "ALAGE_PROGRESS": "0", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    hist = json.loads((out / "metrics.json").read_text())
    assert [h["stage"] for h in hist] == ["global", "attention"]
    assert r.stdout.count("[global 1/1]") == 1  # only rank 0 reports and writes
    assert np.isfinite(hist[-1]["loss"]) and hist[-1]["val_images"] == 32  # validation gathered from both ranks


def test_unreadable_images_are_counted_and_named(tmp_path):
    from PIL import Image

    root = tmp_path / "faces"
    root.mkdir()
    rows = ["path,age,split"]
    for i in range(40):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / f"{i}.png")
        rows.append(f"{i}.png,{20 + i},{'val' if i >= 32 else 'train'}")
    (root / "broken.png").write_bytes(b"\x89PNG broken")
    rows.append("broken.png,30,train")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    t = Trainer(_cfg(tmp_path, arch="resnet18", data=f"csv:{root / 'labels.csv'}", epochs=(1, 0, 0)))
    t.fit()
    assert any("broken.png" in s for s in t.skipped)


def test_eval_cli_table_and_folds(tmp_path, capsys):
    cfg = _cfg(tmp_path, epochs=(1, 1, 1))
    train(cfg)
    from alage_edge.cli import main

    ckpt = str(tmp_path / "run" / "best.pt")
    assert main(["eval", ckpt, "--data", DATA, "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "mae" in out and "box_hit_mean" in out
    assert main(["eval", ckpt, "--data", DATA, "--json", "--cache", str(tmp_path / "cache")]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["images"] == 32 and 0 <= row["cs5"] <= 1 and 0 <= row["all_boxes_hit"] <= 1
    from alage_edge.train.evaluate import format_table

    txt = format_table([{"checkpoint": "a", "arch": "x", "mae": 5.0}, {"checkpoint": "mean of 2 folds", "arch": "x",
                                                                       "mae": 5.5, "mae_std": 0.5}])
    assert "5.500 ± 0.500" in txt


def test_train_cli_help_and_bad_data(tmp_path, capsys):
    from alage_edge.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0 and "--resume" in capsys.readouterr().out
    assert main(["train", "--data", "adience:/nonexistent", "--preset", "tiny", "--out", str(tmp_path / "x")]) == 2
    assert "fold_0_data.txt" in capsys.readouterr().err


# -- nothing lost: another run's folder, a changed config, interrupted writes, every kill point ------------
def test_a_folder_holding_another_run_is_refused_unless_resume_or_overwrite(tmp_path):
    train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0)))
    with pytest.raises(ValueError, match="holds another run .*--resume.*--overwrite"):
        train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0), seed=1))
    with pytest.raises(ValueError, match=r"other settings: seed: 0 then, 1 now"):
        train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0), seed=1, resume=True))
    with pytest.raises(ValueError, match="arch: 'resnet18' then, 'al_resnet18' now"):
        train(_cfg(tmp_path, epochs=(1, 0, 0), resume=True))
    old = read_checkpoint(tmp_path / "run" / "best.pt")["meta"]["train"]["seed"]
    train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0), seed=1, overwrite=True))
    assert old == 0 and read_checkpoint(tmp_path / "run" / "best.pt")["meta"]["train"]["seed"] == 1


def test_a_run_from_before_a_setting_existed_resumes_with_its_default(tmp_path):
    """A config.json lacking a key (written before the setting was added) ran with its default."""
    train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0)))
    path = tmp_path / "run" / "config.json"
    stored = json.loads(path.read_text())
    del stored["clip"]
    path.write_text(json.dumps(stored))
    train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0), resume=True))  # finished: only checked
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"other settings: clip: 5.0 then, 1.0 now"):
        train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0), resume=True, clip=1.0))


def test_a_run_from_before_greedy_heads_resumes_only_as_it_trained(tmp_path):
    """greedy_heads came in on by default; a run stored without the key trained with it off, so resuming it with
    the default would change what it trains: refused, with the setting that resumes it exactly."""
    train(_cfg(tmp_path, epochs=(0, 0, 1)))
    path = tmp_path / "run" / "config.json"
    stored = json.loads(path.read_text())
    assert stored["greedy_heads"] is None  # auto: on for this anchor selector, compared as such
    train(_cfg(tmp_path, epochs=(0, 0, 1), resume=True, greedy_heads=True))  # the same setting, said out loud
    del stored["greedy_heads"]
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"other settings: greedy_heads: False then, True now"):
        train(_cfg(tmp_path, epochs=(0, 0, 1), resume=True))
    train(_cfg(tmp_path, epochs=(0, 0, 1), resume=True, greedy_heads=False))


def test_a_global_only_run_resumes_when_only_attention_options_changed(tmp_path):
    """A preset moving the local CNN's width or the L1 term's heads must not orphan its finished global-only
    runs (one head: nothing changes in them); it does stop an attention run, and a global-only run whose
    own width changed."""
    train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0)))
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    changed = {**stored, "local_width": stored["local_width"] * 2, "crop_size": stored["crop_size"] - 8}
    train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0), resume=True, model=changed,
               l1_heads="all"))  # finished: only checked
    with pytest.raises(ValueError, match=r"other settings: model: .*'width': 8.* then, .*'width': 16.* now"):
        train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0), resume=True, model={**stored, "width": 16}))
    train(_cfg(tmp_path / "al", epochs=(1, 0, 0)))
    stored = json.loads((tmp_path / "al" / "run" / "config.json").read_text())["model"]
    with pytest.raises(ValueError, match=r"other settings: model: "):
        train(_cfg(tmp_path / "al", epochs=(1, 0, 0), resume=True, model={**stored, "local_width": 16}))
    with pytest.raises(ValueError, match=r"other settings: l1_heads: 'fused' then, 'all' now"):
        train(_cfg(tmp_path / "al", epochs=(1, 0, 0), resume=True, l1_heads="all"))


def test_stale_temp_files_of_this_run_are_cleaned(tmp_path):
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / ".last.pt.x1y2.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    (tmp_path / "run" / ".other.txt.tmp").write_text("not ours")
    train(_cfg(tmp_path, arch="resnet18", epochs=(1, 0, 0)))
    assert not stale.exists() and (tmp_path / "run" / ".other.txt.tmp").exists()


@pytest.mark.parametrize("ema", [0.0, 0.9])
@pytest.mark.parametrize("kill", ["after best.pt", "after last.pt"])
def test_a_kill_at_any_point_of_an_epoch_resumes_to_the_same_run(tmp_path, monkeypatch, kill, ema):
    """A kill (here: an exception at the point, then a fresh process state) between the epoch's writes
    leaves a run that --resume completes exactly: same weights (and, with --ema, the same average and the
    same raw weights under it), every metrics row."""
    cfg = dict(arch="resnet18", epochs=(3, 0, 0), ema=ema)
    train(_cfg(tmp_path / "whole", **cfg))
    calls = {"n": 0}
    real_save, real_hist = Trainer.save, Trainer.write_history

    def save(self, name, *a, **k):
        real_save(self, name, *a, **k)
        if kill == "after best.pt" and name == "best.pt" and self.history and len(self.history) == 2:
            raise KeyboardInterrupt  # best.pt of epoch 2 written, last.pt still epoch 1

    def write_history(self):
        calls["n"] += 1
        if kill == "after last.pt" and len(self.history) == 3 and calls["n"] == 3:
            raise KeyboardInterrupt  # last.pt of epoch 3 written, metrics.json still 2 rows
        real_hist(self)

    monkeypatch.setattr(Trainer, "save", save)
    monkeypatch.setattr(Trainer, "write_history", write_history)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "killed", **cfg))
    monkeypatch.setattr(Trainer, "save", real_save)
    monkeypatch.setattr(Trainer, "write_history", real_hist)
    train(_cfg(tmp_path / "killed", resume=True, **cfg))
    ca, cb = (read_checkpoint(tmp_path / run / "run" / "last.pt") for run in ("whole", "killed"))
    a, b = ca["state_dict"], cb["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ("ema" in ca) == (ema > 0)
    if ema:
        ra, rb = ca["ema"]["raw_state_dict"], cb["ema"]["raw_state_dict"]
        assert ca["ema"]["updates"] == cb["ema"]["updates"] == 3 * 96 // 16
        assert all(torch.equal(ra[k], rb[k]) for k in ra) and not all(torch.equal(ra[k], a[k]) for k in ra)
    ha = json.loads((tmp_path / "whole" / "run" / "metrics.json").read_text())
    hb = json.loads((tmp_path / "killed" / "run" / "metrics.json").read_text())
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb] and len(hb) == 3
    ba = read_checkpoint(tmp_path / "whole" / "run" / "best.pt")["meta"]["epoch"]
    assert read_checkpoint(tmp_path / "killed" / "run" / "best.pt")["meta"]["epoch"] == ba


def test_the_l1_term_on_every_head_adds_the_global_and_local_terms():
    from alage_edge.train.losses import LossWeights, age_loss

    g = torch.Generator().manual_seed(0)
    out = {f"{h}_logits": torch.randn(4, 101, generator=g) for h in ("global", "local", "fused")}
    age, group = torch.tensor([3.0, 20.0, 41.0, 77.0]), torch.zeros(4, dtype=torch.long)
    heads = ("global", "local", "fused")
    fused, p1 = age_loss(out, age, group, "dex", LossWeights(l1=0.5), heads)
    every, p2 = age_loss(out, age, group, "dex", LossWeights(l1=0.5, l1_every_head=True), heads)
    assert set(p2) - set(p1) == {"l1_global", "l1_local"} and p1["l1"] == p2["l1"]
    assert float(every - fused) == pytest.approx(0.5 * (p2["l1_global"] + p2["l1_local"]), rel=1e-5)
    with pytest.raises(ValueError, match="l1_heads must be 'fused' or 'all', got 'local'"):
        TrainConfig(l1_heads="local")


def test_the_weight_average_ramps_its_decay_and_copies_integer_buffers():
    from alage_edge.train.ema import WeightAverage

    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    w0 = m[0].weight.detach().clone()
    ema = WeightAverage(m, 0.99)
    with torch.no_grad():
        m[0].weight.add_(1.0)
    m[1].num_batches_tracked += 5
    ema.update(m)
    d = 2 / 11  # min(0.99, (1 + n) / (10 + n)) after one update
    torch.testing.assert_close(ema.shadow["0.weight"], d * w0 + (1 - d) * (w0 + 1))
    assert int(ema.shadow["1.num_batches_tracked"]) == 5
    with ema.applied(m) as raw:
        torch.testing.assert_close(m[0].weight, ema.shadow["0.weight"])
        torch.testing.assert_close(raw["0.weight"], w0 + 1)
    torch.testing.assert_close(m[0].weight, w0 + 1)
    for bad in (1.0, -0.5, "0.9"):
        with pytest.raises(ValueError, match="ema must be a decay in"):
            TrainConfig(ema=bad)


def test_with_ema_the_best_checkpoint_holds_the_weights_validation_scored(tmp_path):
    """best.pt is the average (what each epoch's val MAE measured), not the weights the optimiser stepped."""
    from alage_edge.train.evaluate import evaluate_checkpoint

    train(_cfg(tmp_path, arch="resnet18", epochs=(2, 0, 0), ema=0.9))
    run = tmp_path / "run"
    best = read_checkpoint(run / "best.pt")
    scored = next(r["val_mae"] for r in json.loads((run / "metrics.json").read_text())
                  if r["epoch"] == best["meta"]["epoch"] + 1)
    assert evaluate_checkpoint(str(run / "best.pt"), DATA, "val", cache=str(tmp_path / "cache"))["mae"] == \
        pytest.approx(scored, abs=1e-4)
    raw = read_checkpoint(run / "last.pt")["ema"]["raw_state_dict"]
    assert not all(torch.equal(raw[k], best["state_dict"][k]) for k in raw)


@pytest.mark.parametrize("anneal", [False, True])
def test_explore_anneal_lowers_the_glimpses_sampling_noise_to_zero(tmp_path, monkeypatch, anneal):
    from alage_edge.model.anchors import AnchorAttention

    seen, real = [], AnchorAttention.outputs

    def outputs(self, image, g):
        if self.training:
            seen.append(self.explore_noise)
        return real(self, image, g)

    monkeypatch.setattr(AnchorAttention, "outputs", outputs)
    train(_cfg(tmp_path, model=dict(TINY, selector="static"), epochs=(0, 0, 2), explore_anneal=anneal))
    steps = 2 * 96 // 16
    assert len(seen) == steps
    if anneal:
        assert seen == pytest.approx([1 - (i + 1) / steps for i in range(steps)]) and seen[-1] == 0.0
    else:
        assert set(seen) == {1.0}


def test_explore_anneal_without_an_anchor_selector_is_refused(tmp_path):
    with pytest.raises(ValueError, match="explore_anneal applies to the anchor selectors"):
        Trainer(_cfg(tmp_path, arch="resnet18", explore_anneal=True))


def test_greedy_heads_are_on_for_anchor_selectors_and_refused_without_one(tmp_path):
    assert Trainer(_cfg(tmp_path, out=str(tmp_path / "a"))).model.attention_stream.greedy_heads
    assert not Trainer(_cfg(tmp_path, out=str(tmp_path / "b"), greedy_heads=False)).model.attention_stream.greedy_heads
    boxes = Trainer(_cfg(tmp_path, out=str(tmp_path / "c"), model=dict(TINY, selector="boxes")))
    assert not getattr(boxes.model.attention_stream, "greedy_heads", False)  # auto: nothing to switch on
    with pytest.raises(ValueError, match="greedy_heads applies to the anchor selectors"):
        Trainer(_cfg(tmp_path, out=str(tmp_path / "d"), arch="resnet18", greedy_heads=True))
