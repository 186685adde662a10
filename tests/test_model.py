"""The PyTorch model family: shapes, torchvision keys, RoR, gradients, checkpoints."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from alage_edge.model import (  # noqa: E402
    CheckpointError,
    build_model,
    list_models,
    load_checkpoint,
    load_pretrained,
    read_checkpoint,
    save_checkpoint,
)
from alage_edge.model.resnet import resnet18, resnet34, resnet50  # noqa: E402
from alage_edge.model.ror import PreActBlock, ror  # noqa: E402

from .conftest import BOXES, TINY  # noqa: E402

EXPECTED = ["al_resnet18", "al_resnet34", "al_resnet50", "al_ror18", "al_ror34",
            "resnet18", "resnet34", "resnet50", "ror18", "ror34"]


def test_registry_lists_every_model():
    assert list_models() == sorted(EXPECTED)
    with pytest.raises(KeyError, match="unknown model"):
        build_model("al_vgg16")


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize("head,classes", [("dex", 101), ("groups", 8)])
def test_output_shapes(name, head, classes):
    torch.manual_seed(0)
    m = build_model(name, head=head, **({k: v for k, v in TINY.items()} if "ror" not in name else
                                        dict(TINY, drop_path=0.2))).eval()
    for b in (1, 3):
        with torch.no_grad():
            out = m(torch.randn(b, 3, m.cfg.input_size, m.cfg.input_size))
        assert out["global_logits"].shape == (b, classes)
        assert out["fused_logits"].shape == (b, classes)
        if name.startswith("al_"):
            assert out["boxes"].shape == (b, 3, 4)
            assert out["local_logits"].shape == (b, classes)
            bx = out["boxes"]
            assert (bx >= 0).all() and (bx <= 1).all() and (bx[..., 2:] > bx[..., :2]).all()
        else:
            assert "boxes" not in out
        if head == "dex":
            assert out["age"].shape == (b,) and ((out["age"] >= 0) & (out["age"] <= 100)).all()
        else:
            assert "age" not in out


def test_default_al_resnet34_at_224():
    m = build_model("al_resnet34").eval()
    assert m.cfg.global_size == 224 and m.cfg.crop_size == 112 and m.cfg.steps == 3 and m.cfg.hidden == 512
    with torch.no_grad():
        out = m(torch.randn(1, 3, 448, 448))
    assert out["boxes"].shape == (1, 3, 4) and out["fused_logits"].shape == (1, 101)


def test_streams_are_usable_on_their_own():
    torch.manual_seed(1)
    m = build_model("al_resnet18", **TINY).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        g, gl = m.global_stream(x)
        boxes, ll, fused = m.attention_stream(x, g)
        full = m(x)
    assert g.shape == (2, 64)
    torch.testing.assert_close(full["global_logits"], gl)
    torch.testing.assert_close(full["fused_logits"], fused)
    torch.testing.assert_close(full["boxes"], boxes)


def test_mean_fusion_averages_probabilities():
    torch.manual_seed(2)
    m = build_model("al_resnet18", fusion="mean", **TINY).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 3, 128, 128))
    expected = 0.5 * (out["global_logits"].softmax(1) + out["local_logits"].softmax(1))
    torch.testing.assert_close(out["fused_logits"].softmax(1), expected, atol=1e-6, rtol=1e-5)


def test_initial_boxes_are_distinct_regions():
    m = build_model("al_resnet18", **BOXES).eval()
    with torch.no_grad():
        boxes = m(torch.randn(4, 3, 64, 64))["boxes"]
    # zero box weights: every image starts from the same spread-out glimpses
    assert torch.allclose(boxes[0], boxes[3])
    centres = (boxes[0, :, :2] + boxes[0, :, 2:]) / 2
    assert torch.cdist(centres, centres)[~torch.eye(3, dtype=bool)].min() > 0.2


def test_boxes_read_1_to_1_copy_the_pixels():
    """exact_crops: every initial box sits on pixel edges with side crop_size / detail size, so its crop is
    the image's pixels exactly (the fine lines are not blurred by a half-pixel bilinear phase)."""
    m = build_model("al_resnet18", **dict(BOXES, steps=5, crop_size=24, exact_crops=True)).eval()
    assert m.cfg.s_min == m.cfg.s_max == 24 / 128
    stream, x = m.attention_stream, torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for layer in stream.box_layers:
            box = stream.squash(layer(torch.zeros(1, stream.lstm.hidden_size)))
            j, i = (int(v) for v in torch.round(box[0, :2] * 128))
            assert torch.allclose(box * 128, torch.round(box * 128), atol=1e-3)
            assert torch.allclose(stream.sampler(x, box)[0], x[0, :, i:i + 24, j:j + 24], atol=1e-3)
    with pytest.raises(ValueError, match="exact_crops sets s_min = s_max"):
        build_model("al_resnet18", **dict(BOXES, crop_size=24, exact_crops=True, s_min=0.1))
    with pytest.raises(ValueError, match="half the 128 px input"):
        build_model("al_resnet18", **dict(BOXES, crop_size=72, exact_crops=True))


@pytest.mark.parametrize("batch, exact", [(1, False), (3, False), (3, True)])
def test_fixed_boxes_take_the_batched_path_with_the_same_outputs(batch, exact):
    """Zero box weights in eval mode: no LSTM, the T crops through the local CNN in one call; the outputs
    equal the recurrent loop's (exact crops: image slices there, the sampler in the loop). Training, or any
    non-zero box weight, keeps the loop."""
    torch.manual_seed(1)
    m = build_model("al_resnet18", **dict(BOXES, exact_crops=exact)).eval()
    att = m.attention_stream
    x = torch.randn(batch, 3, 128, 128)
    with torch.no_grad():
        g = m.global_stream(x)[0]
        assert att.boxes_are_fixed()
        calls = []
        hook = att.local.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
        fast = att(x, g)
        hook.remove()
        assert calls == [att.steps * batch]
        assert (att._corners is not None) == exact
        att.train()
        assert not att.boxes_are_fixed()
        att.eval()
        loop = _recurrent(att, x, g)
    for a, b in zip(fast, loop):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        att.box_layers[1].weight[0, 0] = 1e-3  # an in-place change is seen
    assert not att.boxes_are_fixed()
    att.load_state_dict({k: torch.zeros_like(v) if k.startswith("box_layers") and k.endswith("weight") else v
                         for k, v in att.state_dict().items()})
    assert att.boxes_are_fixed()  # and a loaded state


def test_fixed_box_check_does_not_sync_on_every_call(monkeypatch):
    """The weights are read once; later calls (a CUDA-graph capture among them) reuse the answer."""
    m = build_model("al_resnet18", **BOXES).eval()
    assert m.attention_stream.boxes_are_fixed()

    def no_item(self):
        raise AssertionError("a device sync in boxes_are_fixed")

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    assert m.attention_stream.boxes_are_fixed()


def _recurrent(att, x, g):
    """The attention stream's loop, forced (boxes_are_fixed patched to False on the instance)."""
    att.boxes_are_fixed = lambda: False
    try:
        with torch.no_grad():
            return att(x, g)
    finally:
        del att.boxes_are_fixed


def test_gradients_reach_the_box_layer_through_the_sampler():
    torch.manual_seed(3)
    m = build_model("al_resnet18", **BOXES).train()
    x = torch.randn(2, 3, 64, 64)
    out = m(x)
    loss = out["fused_logits"].logsumexp(1).sum() + out["local_logits"][:, 5].sum()
    loss.backward()
    for layer in m.attention_stream.box_layers:
        assert layer.bias.grad is not None and layer.bias.grad.abs().sum() > 0
        assert layer.weight.grad.abs().sum() > 0
    # and the only path from the box to the loss is the sampler: with a constant image the
    # crops do not depend on the box, so the box gradient vanishes
    m.zero_grad()
    out = m(torch.ones(2, 3, 64, 64))
    out["local_logits"][:, 5].sum().backward()
    assert m.attention_stream.box_layers[0].bias.grad.abs().max() < 1e-6


# -- torchvision compatibility ---------------------------------------------------------------------
def _bn(prefix):
    return [f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def torchvision_resnet18_keys():
    """torchvision.models.resnet18().state_dict().keys(), written out."""
    keys = ["conv1.weight", *_bn("bn1")]
    for layer in (1, 2, 3, 4):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            keys += [f"{p}.conv1.weight", *_bn(f"{p}.bn1"), f"{p}.conv2.weight", *_bn(f"{p}.bn2")]
            if block == 0 and layer > 1:
                keys += [f"{p}.downsample.0.weight", *_bn(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


def test_resnet18_state_dict_keys_are_torchvision_s():
    sd = resnet18().state_dict()
    assert list(sd) == torchvision_resnet18_keys()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer4.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert sd["fc.weight"].shape == (1000, 512)


def test_resnet34_and_50_keys():
    sd34, sd50 = resnet34().state_dict(), resnet50().state_dict()
    assert len(sd34) == 218 and "layer3.5.bn2.running_var" in sd34
    assert len(sd50) == 320
    for k, shape in [("layer1.0.conv3.weight", (256, 64, 1, 1)), ("layer1.0.downsample.0.weight", (256, 64, 1, 1)),
                     ("layer4.2.bn3.weight", (2048,)), ("fc.weight", (1000, 2048))]:
        assert sd50[k].shape == shape
    # torchvision v1.5: the stride sits on the 3x3 conv of the bottleneck
    assert resnet50().layer2[0].conv2.stride == (2, 2) and resnet50().layer2[0].conv1.stride == (1, 1)


def test_imagenet_checkpoint_in_torchvision_format_loads_strictly(tmp_path):
    ref = resnet18()
    sd = {k: torch.randn_like(v.float()).to(v.dtype) if v.dtype.is_floating_point else v
          for k, v in ref.state_dict().items()}
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(sd, path)
    m = build_model("al_resnet18")
    load_pretrained(m.global_stream.backbone, path)
    torch.testing.assert_close(m.global_stream.backbone.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    # a DDP-wrapped checkpoint ("module." prefixes, under "state_dict") loads too
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    load_pretrained(build_model("resnet18").global_stream.backbone, path)
    # the wrong depth is refused with the file named
    with pytest.raises(CheckpointError, match="resnet18-imagenet.pth"):
        load_pretrained(build_model("resnet34").global_stream.backbone, path)


# -- RoR -------------------------------------------------------------------------------------------
def test_ror_shortcut_structure():
    m = ror("ror18", width=16)
    assert m.root_shortcut.kernel_size == (1, 1) and m.root_shortcut.stride == (8, 8)
    assert (m.root_shortcut.in_channels, m.root_shortcut.out_channels) == (16, 128)
    assert isinstance(m.stage_shortcuts[0], torch.nn.Identity)  # same width and stride
    for sc, cin, cout in zip(m.stage_shortcuts[1:], (16, 32, 64), (32, 64, 128)):
        assert sc.stride == (2, 2) and (sc.in_channels, sc.out_channels) == (cin, cout)
    assert sum(len(s) for s in m.stages) == 8 and sum(len(s) for s in ror("ror34").stages) == 16


def test_ror_shortcuts_are_in_the_forward_path():
    torch.manual_seed(4)
    m = ror("ror18", width=8, drop_path=0.0).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        base = m(x)
        torch.nn.init.zeros_(m.root_shortcut.weight)
        no_root = m(x)
        m.stage_shortcuts[2].weight.data.zero_()
        no_stage = m(x)
    assert not torch.allclose(base, no_root) and not torch.allclose(no_root, no_stage)


def test_stochastic_depth_linear_decay_and_eval_determinism():
    m = ror("ror34", width=8, drop_path=0.5)
    probs = [b.drop_prob for s in m.stages for b in s]
    assert probs[-1] == pytest.approx(0.5) and probs[0] == pytest.approx(0.5 / 16)
    assert np.all(np.diff(probs) > 0)
    m.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(x), rtol=0, atol=0)


def test_stochastic_depth_drops_at_the_configured_rate():
    torch.manual_seed(5)
    blk = PreActBlock(4, 4, drop_prob=0.3).train()
    x = torch.randn(4000, 4, 6, 6)
    with torch.no_grad():
        pre = blk.relu(blk.bn1(x))
        out = blk(x)
        kept = blk.branch(pre)
    dropped = torch.isclose(out, x, atol=1e-6).flatten(1).all(1)
    full = torch.isclose(out, x + kept, atol=1e-5).flatten(1).all(1)
    assert bool((dropped | full).all())
    assert abs(dropped.float().mean().item() - 0.3) < 0.03
    blk.eval()
    with torch.no_grad():
        pre = blk.relu(blk.bn1(x[:8]))
        torch.testing.assert_close(blk(x[:8]), x[:8] + 0.7 * blk.branch(pre))


# -- checkpoints -----------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(6)
    m = build_model("al_ror18", head="groups", **TINY).eval()
    path = save_checkpoint(tmp_path / "c.pt", m, meta={"epoch": 3})
    m2 = load_checkpoint(path)
    assert m2.cfg == m.cfg and m2.checkpoint_meta["epoch"] == 3
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(m(x)["fused_logits"], m2(x)["fused_logits"])
    assert not list(tmp_path.glob(".*tmp*")), "no temp file left behind"


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt: no such"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="corrupt.pt: not a readable"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save(resnet18().state_dict(), foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: not an alage-edge checkpoint"):
        load_checkpoint(foreign)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "alage-edge-checkpoint", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        read_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


def test_the_model_knows_nothing_of_the_data_generator():
    """Where boxes start is a grid, not synth's age regions (the old table sat within pixels of them), and
    the model package neither imports synth nor copies its region table."""
    import ast
    from pathlib import Path

    import alage_edge.model as model_pkg
    from alage_edge.data.synth import REGIONS
    from alage_edge.model.alnet import INIT_CENTRES

    for cx, cy, w, h in REGIONS:
        nearest = min(np.hypot(cx - x, cy - y) for x, y in INIT_CENTRES)
        assert nearest > 0.03, (cx, cy, nearest)  # no starting centre within 3% of the side of a region's
    for src in Path(model_pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(src.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        mods = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any("synth" in m for m in mods | names) and "REGIONS" not in names, src
        floats = {round(c.value, 3) for c in ast.walk(tree) if isinstance(c, ast.Constant)
                  and isinstance(c.value, float)}
        centres = {round(v, 3) for r in REGIONS for v in r[:2]} - {0.5}
        assert not floats & centres, (src, floats & centres)  # none of synth's region centres as a constant


def test_downsample_cpu_path_is_the_exported_convolution():
    """PyTorch on a CPU computes the global stream's 2x filter separably; it must equal the one Conv that
    exports (and that CUDA runs), a 1-px line at every phase included."""
    import torch.nn.functional as F

    from alage_edge.model.alnet import Downsample2x

    down = Downsample2x()
    x = torch.randn(2, 3, 40, 24, dtype=torch.float64)
    x[:, :, :, 7] += 10.0  # a vertical line at an odd column, a horizontal one at an even row
    x[:, :, 12, :] += 10.0
    conv = F.conv2d(x, down.weight.double(), stride=2, padding=1, groups=3)
    assert torch.allclose(down(x), conv, atol=1e-12)
    traced = torch.jit.trace(down, torch.randn(1, 3, 16, 16))
    assert [n.kind() for n in traced.graph.nodes()].count("aten::_convolution") == 1
    assert torch.allclose(traced(x[:, :, :16, :16].float()), F.conv2d(x[:, :, :16, :16].float(), down.weight,
                                                                       stride=2, padding=1, groups=3), atol=1e-6)
