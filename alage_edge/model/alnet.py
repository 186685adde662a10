"""AL-Net: a global stream and an attention-LSTM stream, fused (Zhang et al., arXiv 1805.10445).

    image -> global backbone -> g -> global logits                          (GlobalStream)
    t = 1..T: LSTM([g; face map; l_{t-1}]) -> scores over anchors -> the best
              anchor not yet read -> exact crop -> local CNN -> l_t             (AnchorAttention, selector "lstm")
    fused = head([g; mean_t l_t])   or   mean of global and local probabilities

``selector="static"`` reads the same anchors every face (learned from the data, no LSTM);
``selector="boxes"`` is the earlier box regression through a bilinear crop (AttentionStream), kept to
read bundles made with it.

Each stream is a submodule usable on its own, and exports to its own ONNX graph.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ages import DEX_CLASSES, HEAD_CLASSES
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from .resnet import resnet
from .ror import ror

BACKBONES = ("resnet18", "resnet34", "resnet50", "ror18", "ror34")
SELECTORS = ("lstm", "static", "boxes")
# Where boxes start, (cx, cy) in [0, 1] of the model's input square: a 3x3 grid over the face, centre first,
# then the four diagonal points, then the four edge midpoints. No face anatomy and nothing of any data
# generator: where the age cues are must be learned (the old table sat within pixels of synth's own age
# regions, which made the fixed-box results say nothing about attention).
INIT_CENTRES = ((0.5, 0.5), (0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7), (0.5, 0.2), (0.5, 0.8),
                (0.2, 0.5), (0.8, 0.5))


@dataclass
class ALNetConfig:
    arch: str = "al_resnet34"
    backbone: str = "resnet34"
    attention: bool = True
    head: str = "dex"
    global_size: int = 224
    width: int = 64
    local_backbone: str = "resnet18"
    local_width: int = 64
    crop_size: int = 112
    # How glimpses are chosen: "lstm" (the LSTM scores anchors from a map of the face, trained by ranking),
    # "static" (the same anchors for every face, learned from the data), "boxes" (box regression through a
    # bilinear crop: the first design, read from older bundles; a config without this key is one).
    selector: str = "lstm"
    anchor_stride: int = 16  # anchors: crop_size squares every anchor_stride pixels of the detail image
    nav_width: int = 16  # channels of the map of the face the selector reads
    candidates: int = 4  # training only: extra random anchors per face the ranking loss compares
    # An anchor at IoU >= suppress_iou with a glimpse already taken is not taken again (non-maximum
    # suppression; NTS-Net uses 0.25). At 0.5 the glimpses piled onto the same regions. A config without
    # this key was written with 0.5.
    suppress_iou: float = 0.1
    # Where anchors may be: "face" (centre inside the face oval of adult facial norms placed by the alignment
    # template: anchors.face_oval), or "all" (every crop_size square of the grid). On faces unlike its
    # training data an LSTM free to look anywhere put half its glimpses off the face. A config without
    # this key was written with "all".
    anchor_region: str = "face"
    # What the LSTM reads: "map" (the face map and the map's features at its last glimpse: the choice depends
    # on no layer INT8 quantises, and the T glimpses, chosen first, are read in one local CNN call over T x B
    # crops) or "local" (also g and the local CNN's features of its last glimpse: the paper's loop, T local
    # CNN calls in turn)
    feedback: str = "map"
    # The model's input is the face at global_size * detail_scale: the global stream reads it through a fixed
    # 2x anti-aliasing downsample (detail_scale 2), the attention crops come from the full detail image.
    # detail_scale 1 is the paper's reading (crops from the global input).
    detail_scale: int = 2
    steps: int = 3
    hidden: int = 512
    s_min: Optional[float] = None  # box side (fraction of the face); default 0.8 * s_max
    s_max: Optional[float] = None  # default: crop_size / detail size (crops never shrunk), at most 0.5
    # Boxes of exactly crop_size pixels of the image they are cut from, placed on pixel edges: every crop is
    # a copy of those pixels (s_min = s_max = crop_size / that size). The default reads boxes 0.85x that
    # side magnified 1.18x, and bilinear sampling at a fractional phase halves a 1-px line's contrast.
    exact_crops: bool = False
    fusion: str = "concat"
    dropout: float = 0.0
    drop_path: float = 0.5
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.local_backbone not in BACKBONES:
            raise ValueError(f"local_backbone must be one of {BACKBONES}, got {self.local_backbone!r}")
        if self.head not in HEAD_CLASSES:
            raise ValueError(f"head must be one of {sorted(HEAD_CLASSES)}, got {self.head!r}")
        if self.fusion not in ("concat", "mean"):
            raise ValueError(f"fusion must be 'concat' or 'mean', got {self.fusion!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.global_size < 32 or self.crop_size < 16:
            raise ValueError(f"global_size must be >= 32 and crop_size >= 16, got {self.global_size}, {self.crop_size}")
        if self.detail_scale not in (1, 2):
            raise ValueError(f"detail_scale must be 1 or 2, got {self.detail_scale}")
        if self.selector not in SELECTORS:
            raise ValueError(f"selector must be one of {SELECTORS}, got {self.selector!r}")
        if self.attention and self.selector != "boxes":
            self._check_anchors()
            self.mean, self.std = tuple(self.mean), tuple(self.std)
            return
        cap = min(0.5, self.crop_size / self.input_size)
        if self.exact_crops:
            if self.crop_size / self.input_size > 0.5:
                raise ValueError(f"exact_crops needs crop_size <= half the {self.input_size} px input, got "
                                 f"{self.crop_size}")
            if (self.s_min, self.s_max) not in ((None, None), (cap, cap)):
                raise ValueError(f"exact_crops sets s_min = s_max = {cap:.4f}; got s_min={self.s_min}, "
                                 f"s_max={self.s_max}")
            self.s_min = self.s_max = cap
        if self.s_max is None:
            self.s_max = cap
        if self.s_min is None:
            self.s_min = round(0.8 * self.s_max, 4)
        # grid_sample shrinks without anti-aliasing: fine lines would alias as a box grows past the cap
        if self.attention and self.detail_scale > 1 and self.s_max > cap + 1e-6:
            raise ValueError(f"s_max={self.s_max} would shrink crops: a {self.crop_size} px crop of a "
                             f"{self.input_size} px detail image covers at most {cap:.3f} of it")
        self.mean, self.std = tuple(self.mean), tuple(self.std)

    def _check_anchors(self) -> None:
        side, crop, stride = self.input_size, self.crop_size, self.anchor_stride
        if crop > side // 2:
            raise ValueError(f"crop_size must be at most half the {side} px detail image, got {crop}")
        if stride < 1 or (side - crop) % stride:
            raise ValueError(f"anchor_stride must divide detail size - crop_size = {side - crop}, got {stride}")
        if self.exact_crops or self.s_min is not None or self.s_max is not None:
            raise ValueError(f"selector {self.selector!r} cuts exact crop_size anchors: exact_crops, s_min and "
                             f"s_max are for selector 'boxes'")
        if self.feedback not in ("local", "map"):
            raise ValueError(f"feedback must be 'local' or 'map', got {self.feedback!r}")
        if self.anchor_region not in ("face", "all"):
            raise ValueError(f"anchor_region must be 'face' or 'all', got {self.anchor_region!r}")
        if not 0.0 < self.suppress_iou <= 1.0:
            raise ValueError(f"suppress_iou must be in (0, 1], got {self.suppress_iou}")
        if self.nav_width < 1 or self.candidates < 0:
            raise ValueError(f"nav_width must be >= 1 and candidates >= 0, got {self.nav_width}, {self.candidates}")
        from .anchors import anchor_tables  # the anchors module builds on this one

        anchors = len(anchor_tables(self)[0])
        if self.steps > anchors:
            raise ValueError(f"steps={self.steps} is more than the {anchors} anchors (anchor_region "
                             f"{self.anchor_region!r})")

    @property
    def num_classes(self) -> int:
        return HEAD_CLASSES[self.head]

    @property
    def input_size(self) -> int:
        """Side of the model's one input: the detail image."""
        return self.global_size * self.detail_scale

    @property
    def preprocess(self) -> PreprocessSpec:
        return PreprocessSpec(size=self.input_size, mean=self.mean, std=self.std)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ALNetConfig":
        from ..manifest import renamed

        d = renamed(d)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown model config keys: {unknown}")
        if "selector" not in d:  # written before anchors: the box regression
            d = {**d, "selector": "boxes"}
        if "suppress_iou" not in d:  # written before the key: anchors suppressed at IoU >= 0.5
            d = {**d, "suppress_iou": 0.5}
        if "anchor_region" not in d:  # written before the key: anchors anywhere on the grid
            d = {**d, "anchor_region": "all"}
        return cls(**d)


def make_backbone(name: str, width: int, drop_path: float = 0.0, dropout: float = 0.0) -> nn.Module:
    if name.startswith("ror"):
        return ror(name, width=width, drop_path=drop_path, dropout=dropout)
    return resnet(name, num_classes=0, width=width)


def _halve(x: torch.Tensor, dim: int) -> torch.Tensor:
    """[1,3,3,1] / 8 at stride 2 along ``dim`` (-1 or -2, even length), one zero of padding each side:
    out[j] = (x[2j-1] + 3 x[2j] + 3 x[2j+1] + x[2j+2]) / 8, from the even and odd samples."""
    n = x.shape[dim]
    pairs = x.unflatten(dim, (n // 2, 2))
    even, odd = pairs.select(dim, 0), pairs.select(dim, 1)  # x[2j], x[2j+1]; ``dim`` now indexes j
    zero = torch.zeros_like(even.narrow(dim, 0, 1))
    before = torch.cat([zero, odd.narrow(dim, 0, n // 2 - 1)], dim)  # x[2j-1]
    after = torch.cat([even.narrow(dim, 1, n // 2 - 1), zero], dim)  # x[2j+2]
    return (3 * (even + odd) + before + after) / 8


class Downsample2x(nn.Module):
    """A fixed anti-aliasing 2x downsample: depthwise [1,3,3,1] x [1,3,3,1] / 64, stride 2 (no parameters).

    Exports as one Conv with a constant weight (opset 17/18, TensorRT and DLA run it; OpenVINO ran it faster
    than any other form: docs, benchmarks). Unlike bilinear resizing it removes what the global resolution
    cannot hold (zero response at the detail Nyquist). PyTorch on a CPU computes the same filter separably
    (3x faster than its depthwise convolution at a training batch; the two agree to float rounding)."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("weight", (torch.outer(k, k) / 64.0).expand(3, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not torch.jit.is_tracing() and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
            return _halve(_halve(x, -1), -2)
        return F.conv2d(x, self.weight.to(x.dtype), stride=2, padding=1, groups=3)


class GlobalStream(nn.Module):
    """image (B,3,dS,dS) -> (g (B,C), global logits (B,K)); reads the image downsampled to S when d = 2."""

    def __init__(self, cfg: ALNetConfig):
        super().__init__()
        self.downsample = Downsample2x() if cfg.detail_scale == 2 else nn.Identity()
        self.backbone = make_backbone(cfg.backbone, cfg.width, cfg.drop_path, cfg.dropout)
        self.num_features = self.backbone.num_features
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 and not cfg.backbone.startswith("ror") \
            else nn.Identity()
        self.head = nn.Linear(self.num_features, cfg.num_classes)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        g = self.backbone(self.downsample(image))  # module calls: exported node names carry the module path
        return g, self.head(self.dropout(g))


class Glimpses(nn.Module):
    """What every attention stream shares: the local CNN that reads each glimpse, its head, and the fusion
    with the global features. Subclasses choose the glimpses."""

    def __init__(self, cfg: ALNetConfig, global_features: int, global_head: nn.Linear):
        super().__init__()
        self.steps, self.fusion = cfg.steps, cfg.fusion
        self.local = make_backbone(cfg.local_backbone, cfg.local_width)
        self.local_features = self.local.num_features
        self.local_head = nn.Linear(self.local_features, cfg.num_classes)
        if cfg.fusion == "concat":
            self.fused_head = nn.Linear(global_features + self.local_features, cfg.num_classes)
        else:  # mean of probabilities needs the global head: tied, not copied
            self.global_head = global_head
        self.pixels = cfg.input_size  # side of the image the crops come from

    def outputs(self, image: torch.Tensor, g: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The named outputs (training may add what its losses need); ``forward`` is the exported tuple."""
        boxes, local_logits, fused = self(image, g)
        return {"boxes": boxes, "local_logits": local_logits, "fused_logits": fused}

    def _heads(self, g: torch.Tensor, local: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(local logits, fused logits) from g and the mean local feature."""
        local_logits = self.local_head(local)
        if self.fusion == "concat":
            fused = self.fused_head(torch.cat([g, local], dim=1))
        else:
            # log of the mean of the two distributions, log((p + q) / 2) = max(a, b) + log(1 + exp(-|a - b|)) -
            # log 2, with max(a, b) = (a + b + |a - b|) / 2: Add, Abs, Exp and Log, never ReduceLogSumExp, which
            # onnx-tensorrt imports as exp then log-sum without the max (-inf in fp16 below about -16.6); no Max
            # either, which an fp16 converter keeps in fp32 and mistypes around
            a, b = F.log_softmax(self.global_head(g), dim=1), F.log_softmax(local_logits, dim=1)
            d = torch.abs(a - b)
            fused = 0.5 * (a + b + d) + torch.log(1 + torch.exp(-d)) - math.log(2.0)
        return local_logits, fused


class AttentionStream(Glimpses):
    """selector "boxes": (image, g) -> (boxes (B,T,4), local logits (B,K), fused logits (B,K)), each box
    regressed from the LSTM's state and cut by a bilinear sampler."""

    def __init__(self, cfg: ALNetConfig, global_features: int, global_head: nn.Linear):
        super().__init__(cfg, global_features, global_head)
        from .sampler import BoxSampler, BoxSquash

        self.lstm = nn.LSTMCell(global_features + self.local_features, cfg.hidden)
        self.squash = BoxSquash(cfg.s_min, cfg.s_max)
        self.box_layers = nn.ModuleList(nn.Linear(cfg.hidden, 3) for _ in range(cfg.steps))
        self.sampler = BoxSampler(cfg.crop_size)
        self.reset_boxes(cfg.s_min + 0.25 * (cfg.s_max - cfg.s_min))

    def reset_boxes(self, side: float) -> None:
        """Zero weights; biases spread the T boxes over distinct face regions, each box's corner on a pixel
        edge: a box of side crop_size / pixels (s_min = s_max) then samples pixel centres, an exact copy
        (a box half a pixel off reads every 1-px line blurred by [0.5, 0.5] in each axis)."""
        for t, layer in enumerate(self.box_layers):
            cx, cy = (self._snap(c, side) for c in INIT_CENTRES[t % len(INIT_CENTRES)])
            nn.init.zeros_(layer.weight)
            with torch.no_grad():
                layer.bias.copy_(self.squash.inverse(cx, cy, side))

    def _snap(self, centre: float, side: float) -> float:
        corner = min(max(round((centre - side / 2) * self.pixels), 0), math.floor((1 - side) * self.pixels))
        return corner / self.pixels + side / 2

    def boxes_are_fixed(self) -> bool:
        """In eval mode, box layers whose weights are all zero put every box at its bias whatever the LSTM
        says (a model trained with box_lr_scale 0): the T crops are then independent."""
        if self.training:
            return False
        # checked again only when a box weight changed (in place or replaced): no device sync per call,
        # none inside a CUDA-graph capture
        key = tuple((id(p), p._version) for layer in self.box_layers for p in (layer.weight, layer.bias))
        if getattr(self, "_fixed_key", None) != key:
            with warnings.catch_warnings():  # a constant of the model: the exported trace is right for it
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                self._fixed = all(not layer.weight.data.any().item() for layer in self.box_layers)
                self._corners = self._pixel_corners() if self._fixed else None
            self._fixed_key = key
        return self._fixed

    def _pixel_corners(self) -> Optional[List[Tuple[int, int]]]:
        """(row, column) of each fixed box's top-left pixel when every box is exactly crop_size pixels on
        pixel edges (exact_crops): its crop is then a plain slice of the image, exact in any precision and
        no GridSample in the graph; None otherwise."""
        size = self.sampler.size
        corners = []
        for layer in self.box_layers:
            box = self.squash(layer.bias.data.float()[None])[0] * self.pixels
            x1, y1, x2, y2 = (float(v) for v in box)
            c, r = round(x1), round(y1)
            if max(abs(x1 - c), abs(y1 - r), abs(x2 - c - size), abs(y2 - r - size)) > 1e-3:
                return None
            corners.append((r, c))
        return corners

    def forward(self, image: torch.Tensor, g: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.boxes_are_fixed():
            return self._forward_fixed(image, g)
        b = g.shape[0]
        h = g.new_zeros(b, self.lstm.hidden_size)
        c = g.new_zeros(b, self.lstm.hidden_size)
        l_prev = g.new_zeros(b, self.local_features)
        boxes, feats = [], []
        for t in range(self.steps):
            h, c = self.lstm(torch.cat([g, l_prev], dim=1), (h, c))
            box = self.squash(self.box_layers[t](h))
            crop = self.sampler(image, box)
            l_prev = self.local(crop)  # exported as /stream/local/... (int8_scope.is_local_cnn relies on it)
            boxes.append(box)
            feats.append(l_prev)
        return (torch.stack(boxes, dim=1), *self._heads(g, torch.stack(feats, dim=1).mean(dim=1)))

    def _forward_fixed(self, image: torch.Tensor, g: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """No LSTM, and one local CNN call over the T x B crops (the same numbers as the loop: 36% less
        attention-stream latency at batch 1, 19% at batch 8, OpenVINO fp32 on the demo model)."""
        b = g.shape[0]
        h = g.new_zeros(b, self.lstm.hidden_size)
        boxes = [self.squash(layer(h)) for layer in self.box_layers]  # T x (B, 4): the biases
        with warnings.catch_warnings():  # the exported input's side is fixed: a constant of the graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            sliced = self._corners is not None and tuple(image.shape[-2:]) == (self.pixels, self.pixels)
        if sliced:  # exact crops: slices of the image (the sampler gives the same, to float rounding)
            r = self.sampler.size
            crops = torch.cat([image[:, :, y:y + r, x:x + r] for y, x in self._corners])
        else:  # crops from each box tensor, not from the stacked output (an fp16 converter mistyped a graph
            # output read back inside the graph: onnxconverter-common 1.16)
            crops = torch.cat([self.sampler(image, box) for box in boxes])  # (T*B, 3, R, R), t-major
        feats = self.local(crops).reshape(self.steps, b, self.local_features)
        return (torch.stack(boxes, dim=1), *self._heads(g, feats.mean(dim=0)))


class ALNet(nn.Module):
    """The whole network; ``attention=False`` gives the global-only baseline."""

    def __init__(self, cfg: ALNetConfig):
        super().__init__()
        self.cfg = cfg
        self.global_stream = GlobalStream(cfg)
        self.attention_stream: Optional[Glimpses] = None
        if cfg.attention:
            from .anchors import AnchorAttention

            kind = AttentionStream if cfg.selector == "boxes" else AnchorAttention
            self.attention_stream = kind(cfg, self.global_stream.num_features, self.global_stream.head)
        self.register_buffer("ages", torch.arange(DEX_CLASSES, dtype=torch.float32), persistent=False)

    def forward(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        g, global_logits = self.global_stream(image)
        out = {"global_logits": global_logits}
        if self.attention_stream is not None:
            out.update(self.attention_stream.outputs(image, g))
        else:
            out["fused_logits"] = global_logits
        if self.cfg.head == "dex":
            out["age"] = F.softmax(out["fused_logits"], dim=1) @ self.ages
        return out

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Parameters by stream, for the staged schedule (freeze global, train attention)."""
        groups = {"global": list(self.global_stream.parameters())}
        if self.attention_stream is not None:
            tied = {id(p) for p in groups["global"]}
            groups["attention"] = [p for p in self.attention_stream.parameters() if id(p) not in tied]
        return groups


def count_flops(model: ALNet, batch: int = 1) -> float:
    """Multiply-accumulates x2 of convolutions, linears, LSTM cells and the sampler, at global_size."""
    flops = 0.0

    def conv_hook(m, inp, out):
        nonlocal flops
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        flops += 2.0 * out.numel() * k

    def linear_hook(m, inp, out):
        nonlocal flops
        flops += 2.0 * out.numel() * m.in_features

    def lstm_hook(m, inp, out):
        nonlocal flops
        flops += 2.0 * inp[0].shape[0] * 4 * m.hidden_size * (m.input_size + m.hidden_size)

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.LSTMCell):
            handles.append(m.register_forward_hook(lstm_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(batch, 3, model.cfg.input_size, model.cfg.input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return flops / batch
