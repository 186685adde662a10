"""The anchor selector: the LSTM scores anchors on a map of the face, glimpses are exact crops, the
choice exports (a first-max per step + GatherElements) and the ranking loss is what trains it."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from alage_edge.metrics import iou  # noqa: E402
from alage_edge.model import ALNetConfig, build_model  # noqa: E402
from alage_edge.model.anchors import SplitLSTMCell, anchor_tables, face_oval, first_max  # noqa: E402

from .conftest import TINY  # noqa: E402


def _model(selector="lstm", seed=0, prior=2.0, **over):
    torch.manual_seed(seed)
    m = build_model("al_resnet18", **dict(TINY, selector=selector, **over)).eval()
    with torch.no_grad():  # a trained selector prefers some anchors: random scores stand in for that
        m.attention_stream.prior.normal_(0, prior)
    return m


def test_glimpses_are_exact_copies_of_the_anchor_pixels():
    m = _model()
    att, x = m.attention_stream, torch.randn(3, 3, 128, 128)
    starts, boxes, _, _, _ = anchor_tables(m.cfg)
    assert 6 < len(starts) < ((128 - 32) // 16 + 1) ** 2  # the grid's squares centred on the face
    pick = torch.tensor([0, 7, len(starts) - 1])
    crops = att.cut(x, pick)
    for i, a in enumerate(pick.tolist()):
        y, c = divmod(int(starts[a]), 128)
        assert torch.equal(crops[i], x[i, :, y:y + 32, c:c + 32])
        np.testing.assert_allclose(boxes[a].numpy() * 128, [c, y, c + 32, y + 32])


@pytest.mark.parametrize("suppress", [0.1, 0.25, 0.5])
def test_the_lstm_chooses_per_face_and_never_reads_an_overlapping_anchor_twice(suppress):
    m = _model(steps=4, prior=0.0, suppress_iou=suppress)
    with torch.no_grad():
        boxes = m(torch.randn(6, 3, 128, 128))["boxes"].numpy()
    assert boxes.shape == (6, 4, 4)
    assert len({tuple(b.ravel()) for b in boxes}) > 1, "every face got the same glimpses"
    for b in boxes:
        pair = iou(b[:, None], b[None])
        assert (pair[~np.eye(4, dtype=bool)] < suppress).all()


def test_suppression_follows_the_configured_iou_and_an_older_config_reads_as_0_5():
    m = _model()
    low = m.cfg.suppress_iou
    assert low < 0.5
    _, boxes, overlap, _, _ = anchor_tables(m.cfg)
    pair = iou(boxes.numpy()[:, None], boxes.numpy()[None])
    np.testing.assert_array_equal(overlap.numpy(), (pair >= low - 1e-6).astype(np.float32))
    assert ((pair >= low) & (pair < 0.5)).any(), "no anchor pair between the two thresholds: the test sees nothing"
    cfg = m.cfg.to_dict()
    del cfg["suppress_iou"]
    assert ALNetConfig.from_dict(cfg).suppress_iou == 0.5


def test_anchors_lie_on_the_face_of_the_alignment_template_and_an_older_config_reads_every_square():
    """The face oval comes from facial norms around the template's eyes (no data generator): it holds the
    eyes, mouth and forehead of the template, not the input's corners; the anchors are the grid squares
    centred in it, and each anchor's cell of the navigator's map is its place in the full grid."""
    e = (0.36, 0.42, 0.64, 0.42)
    assert face_oval(0.36, 0.42, e) and face_oval(0.5, 0.75, e) and face_oval(0.5, 0.2, e)
    assert not any(face_oval(x, y, e) for x, y in ((0.05, 0.05), (0.95, 0.05), (0.05, 0.95), (0.95, 0.95)))
    assert face_oval(0.85, 0.3, (0.6, 0.3, 0.88, 0.3)) and not face_oval(0.85, 0.3, e)  # follows the eyes
    m = _model()
    starts, boxes, _, _, cell = anchor_tables(m.cfg)
    b = boxes.numpy()
    assert face_oval((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2).all()
    n = (128 - 32) // 16 + 1
    np.testing.assert_array_equal(starts.numpy(), (cell.numpy() // n) * 16 * 128 + (cell.numpy() % n) * 16)
    cfg = m.cfg.to_dict()
    del cfg["anchor_region"]
    old = ALNetConfig.from_dict(cfg)
    assert old.anchor_region == "all" and len(anchor_tables(old)[0]) == n * n
    with pytest.raises(ValueError, match="anchor_region"):
        ALNetConfig.from_dict({**cfg, "anchor_region": "cheeks"})


def test_the_glimpses_stay_on_the_face_whatever_the_picture():
    """An LSTM that scores the corners highest (random weights, a prior pushed there) still reads the face."""
    m = _model(steps=4, prior=0.0)
    _, boxes, _, _, _ = anchor_tables(m.cfg)
    with torch.no_grad():
        m.attention_stream.prior.copy_(torch.from_numpy(np.abs(boxes.numpy()[:, :2].sum(1) - 1.0)).float() * 50)
        out = m(torch.randn(5, 3, 128, 128))["boxes"].numpy()
    assert face_oval((out[..., 0] + out[..., 2]) / 2, (out[..., 1] + out[..., 3]) / 2).all()


def test_first_max_is_argmax_with_its_tie_rule():
    """The exported choice: the first of the largest scores, as torch.argmax, on ties too (a suppressed row
    is all -1e4 but one)."""
    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 4, (64, 50), generator=g).float()  # many ties
    score[0] = -1.0e4
    index = torch.arange(50, dtype=torch.float32)
    assert torch.equal(first_max(score, index), torch.argmax(score, dim=1))
    score = torch.randn(64, 529, generator=g)
    assert torch.equal(first_max(score, torch.arange(529.0)), torch.argmax(score, dim=1))


def test_the_split_lstm_cell_is_torchs_cell_with_the_constant_part_worked_out_once():
    """Same parameters and state dict as nn.LSTMCell; the same states over several steps."""
    torch.manual_seed(0)
    ref, cell = torch.nn.LSTMCell(30 + 7, 16), SplitLSTMCell(30, 7, 16)
    cell.load_state_dict(ref.state_dict())
    const = torch.randn(4, 30)
    h = c = h2 = c2 = torch.zeros(4, 16)
    once = cell.once(const)
    for _ in range(5):
        x = torch.randn(4, 7)
        h, c = ref(torch.cat([const, x], dim=1), (h, c))
        h2, c2 = cell(x, (h2, c2), once)
        torch.testing.assert_close(h2, h, rtol=0, atol=1e-6)
        torch.testing.assert_close(c2, c, rtol=0, atol=1e-6)


def test_static_selector_reads_the_same_anchors_on_every_face_in_one_local_call():
    m = _model("static")
    att, calls = m.attention_stream, []
    hook = att.local.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    with torch.no_grad():
        boxes = m(torch.randn(5, 3, 128, 128))["boxes"]
    hook.remove()
    assert calls == [3 * 5] and torch.equal(boxes[0], boxes[4])
    assert not hasattr(att, "lstm") and not hasattr(att, "navigator")


def test_the_choice_is_trained_by_ranking_not_through_the_crop():
    """The ranking loss reaches every part of the selector (prior, query, LSTM, navigator); the loss of
    the glimpses alone reaches none of it: there is no gradient through the choice."""
    from train.losses import LossWeights, ranking_loss

    m = _model().train()
    att = m.attention_stream
    x, age = torch.randn(4, 3, 128, 128), torch.tensor([10.0, 30.0, 50.0, 70.0])
    out = m(x)
    assert out["glimpse_logits"].shape == (4, 3 + m.cfg.candidates, 101)
    assert out["glimpse_scores"].shape == (4, 3, 3 + m.cfg.candidates)
    loss, parts = ranking_loss(out, age, torch.zeros(4, dtype=torch.long), "dex", LossWeights(l1=0.05))
    assert set(parts) == {"glimpse", "rank"} and parts["rank"] > 0
    loss.backward()
    for name in ("prior", "query.weight", "lstm.weight_ih", "navigator.features.0.weight"):
        grad = dict(att.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    m.zero_grad()
    out = m(x)
    out["glimpse_logits"].logsumexp(-1).sum().backward()
    for name in ("prior", "query.weight", "navigator.features.0.weight"):
        grad = dict(att.named_parameters())[name].grad
        assert grad is None or grad.abs().sum() == 0, name


@pytest.mark.parametrize("selector", ["lstm", "static"])
def test_greedy_heads_read_the_tests_glimpses_and_the_ranking_the_sampled_ones(selector):
    """With greedy_heads the heads train on the noise-free choice (the glimpses the test reads) and the ranking
    reads the sampled rollout, exactly as without it under the same random numbers."""
    m = _model(selector, prior=0.0).train()  # no preferred anchor: the sampled glimpses move away from the greedy
    att, x = m.attention_stream, torch.randn(4, 3, 128, 128)

    def run(greedy, noise):
        att.greedy_heads, att.explore_noise = greedy, noise
        torch.manual_seed(1)
        return m(x)

    both, sampled, plain = run(True, 1.0), run(False, 1.0), run(False, 0.0)
    assert not torch.equal(sampled["boxes"], plain["boxes"]), "the noise moved no glimpse: the test sees nothing"
    assert torch.equal(both["boxes"], plain["boxes"])
    torch.testing.assert_close(both["fused_logits"], plain["fused_logits"])
    torch.testing.assert_close(both["local_logits"], plain["local_logits"])
    assert torch.equal(both["glimpse_scores"], sampled["glimpse_scores"])
    torch.testing.assert_close(both["glimpse_logits"], sampled["glimpse_logits"])


def test_the_ranking_loss_moves_the_scores_towards_the_teacher():
    """A step's scores, pushed by the loss alone, come to rank the glimpse the local CNN reads best first."""
    from train.losses import LossWeights, ranking_loss

    scores = torch.zeros(1, 1, 4, requires_grad=True)
    logits = torch.full((1, 4, 101), -5.0)
    logits[0, 2, 40] = 5.0  # glimpse 2 says 40, the true age
    opt = torch.optim.SGD([scores], lr=1.0)
    for _ in range(20):
        out = {"glimpse_logits": logits, "glimpse_scores": scores}
        loss, _ = ranking_loss(out, torch.tensor([40.0]), torch.zeros(1, dtype=torch.long), "dex", LossWeights())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert int(scores[0, 0].argmax()) == 2


def test_a_config_written_before_anchors_reads_as_box_regression():
    cfg = build_model("al_resnet18", **dict(TINY, selector="boxes")).cfg.to_dict()
    del cfg["selector"]
    assert ALNetConfig.from_dict(cfg).selector == "boxes"


@pytest.mark.parametrize("over, message", [
    ({"crop_size": 80}, "at most half"),
    ({"anchor_stride": 20}, "anchor_stride must divide"),
    ({"exact_crops": True}, "exact_crops, s_min and s_max are for selector 'boxes'"),
    ({"selector": "glance"}, "selector must be one of"),
    ({"suppress_iou": 0.0}, "suppress_iou must be in"),
])
def test_bad_anchor_settings_are_refused_with_the_reason(over, message):
    with pytest.raises(ValueError, match=message):
        build_model("al_resnet18", **dict(TINY, **over))


def test_a_wrong_input_size_is_refused():
    m = _model()
    with pytest.raises(ValueError, match="128 px detail image"):
        m(torch.randn(1, 3, 64, 64))


def test_the_exported_attention_graph_holds_the_lstm_and_the_choice(tmp_path):
    """attention.onnx: LSTM gates, a first-max over anchors and GatherElements crops; ONNX Runtime gives the
    same glimpses and ages as PyTorch; the static TensorRT check finds nothing."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from alage_edge.convert.export import export_bundle
    from alage_edge.convert.trtcheck import check_bundle

    m = _model()
    export_bundle(m, tmp_path / "b")
    graph = onnx.load(str(tmp_path / "b" / "attention.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert {"ReduceMax", "ReduceMin", "GatherElements", "Sigmoid", "Tanh"} <= ops and "ArgMax" not in ops
    assert any(n.name.startswith("/stream/lstm") for n in graph.node), "no LSTM in attention.onnx"
    assert check_bundle(tmp_path / "b") == []
    x = torch.randn(4, 3, 128, 128)
    with torch.no_grad():
        ref = m(x)
    s = ort.InferenceSession(str(tmp_path / "b" / "alnet.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in s.get_outputs()], s.run(None, {"image": x.numpy()})))
    np.testing.assert_array_equal(got["boxes"], ref["boxes"].numpy())
    np.testing.assert_allclose(got["fused_logits"], ref["fused_logits"].numpy(), atol=1e-4)


def test_a_bundle_and_checkpoint_written_before_the_renames_still_load(tmp_path):
    """Written before anchors and before ``img_size`` became ``global_size``: the manifest and the checkpoint
    read as box regression at that global size, and the bundle runs."""
    pytest.importorskip("onnxruntime")
    import json

    from alage_edge import AgeEstimator
    from alage_edge.convert.export import export_bundle
    from alage_edge.manifest import Manifest
    from alage_edge.model import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = build_model("al_resnet18", **dict(TINY, selector="boxes")).eval()
    ckpt = save_checkpoint(tmp_path / "m.pt", model)
    obj = torch.load(ckpt, weights_only=True)
    old = {("img_size" if k == "global_size" else k): v for k, v in obj["config"].items() if k not in
           ("selector", "anchor_stride", "nav_width", "candidates", "feedback")}
    obj["config"] = old
    torch.save(obj, ckpt)
    again = load_checkpoint(ckpt)
    assert again.cfg.selector == "boxes" and again.cfg.global_size == 64
    export_bundle(again, tmp_path / "b")
    path = tmp_path / "b" / "manifest.json"
    man = json.loads(path.read_text())
    man["model"] = {("img_size" if k == "global_size" else k): v for k, v in man["model"].items() if k != "selector"}
    path.write_text(json.dumps(man))
    assert Manifest.load(tmp_path / "b").model["global_size"] == 64
    est = AgeEstimator.load(tmp_path / "b", backend="onnxruntime")
    assert est.infer(est.spec.random_input(2))["age"].shape == (2,)
    est.close()


def test_static_anchors_are_worked_out_once_until_the_prior_changes():
    m = _model("static")
    first = m.attention_stream._static_picks()
    assert m.attention_stream._static_picks() is first  # cached: no argmax and no sync per call
    with torch.no_grad():
        m.attention_stream.prior[0].zero_()
        m.attention_stream.prior[0, 5] = 100.0  # an in-place change is seen
    assert m.attention_stream._static_picks()[0] == 5
