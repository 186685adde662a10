"""The attention-LSTM stream that chooses among anchors (selector "lstm" or "static").

Anchors are crop_size squares every anchor_stride pixels of the detail image, those centred on the face
(``anchor_region`` "face": an oval of adult facial norms around the alignment template's eyes). A navigator
reads the face at 1/8 of the detail resolution and gives each anchor a feature vector (pooled over its window). At each
step the LSTM reads a summary of that map and what it saw at its last glimpse (the map there, or with
``feedback="local"`` g and the local CNN's features of the glimpse: the paper's loop), its query scores every
anchor, anchors that overlap a glimpse already taken are suppressed (IoU >= ``suppress_iou``), and the best one is cut
from the detail image: an exact copy of its pixels (GatherElements with data-dependent positions: exports
at opset 17 and runs in ONNX Runtime, OpenVINO and TensorRT).

The choice is not differentiable and is not trained through the crop. Training also reads ``candidates``
random anchors per face; each glimpse's own loss under the local CNN is the teacher, and the step's
scores learn its ranking (listwise, NTS-Net's idea: Yang et al., ECCV 2018). ``static`` drops the
navigator and the LSTM: a learned score per step and anchor, the same for every face.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..preprocess import PreprocessSpec
from .alnet import ALNetConfig, Glimpses

SUPPRESS = -1.0e4  # added to the score of an anchor that overlaps a glimpse already taken
# The face in the alignment frame, from adult facial norms (Farkas, "Anthropometry of the Head and Face",
# 1994; rounded means over both sexes) in interpupillary distances (about 62 mm) from the pupils' midpoint:
# the hairline (trichion) 1.2 above, the chin (gnathion) 1.75 below, the cheekbones (zygion) 1.1 to each side.
FACE_UP, FACE_DOWN, FACE_HALF_WIDTH = 1.2, 1.75, 1.1


def view_factor(cfg: ALNetConfig) -> int:
    """The navigator's downsample of the detail image: the largest of 8, 4, 2, 1 that divides the image,
    the crop and the stride, so each anchor's window is a whole number of map cells."""
    return next(f for f in (8, 4, 2, 1)
                if cfg.input_size % f == 0 and cfg.crop_size % f == 0 and cfg.anchor_stride % f == 0)


class Navigator(nn.Module):
    """image (B,3,D,D) -> anchor features (B,C,G,G): a patch convolution (f x f, stride f) that reads the
    face at D/f, two 3x3 convolutions, and each anchor's vector the mean over its window. (An average pool of
    the image as the first step cost OpenVINO a layout reorder of the whole detail image, 37% of the model's
    time at batch 8; a convolution reads the planar image directly.)"""

    def __init__(self, cfg: ALNetConfig):
        super().__init__()
        f, w = view_factor(cfg), cfg.nav_width

        def block(conv, o):
            return [conv, nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*block(nn.Conv2d(3, w, f, stride=f, bias=False), w),
                                      *block(nn.Conv2d(w, w, 3, padding=1, bias=False), w),
                                      *block(nn.Conv2d(w, w, 3, padding=2, dilation=2, bias=False), w))
        self.pool = nn.AvgPool2d(cfg.crop_size // f, stride=cfg.anchor_stride // f)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(image))


class SplitLSTMCell(nn.LSTMCell):
    """``nn.LSTMCell`` (the same parameters and state dict) whose input is [a part that is the same at every
    step; a part that changes]. The constant part's product with the input weights (``once``) is worked out
    once per face, not at every step: at batch 1 those weights were the model's largest read."""

    def __init__(self, constant: int, step: int, hidden: int):
        super().__init__(constant + step, hidden)
        self.constant = constant

    def once(self, x: torch.Tensor) -> torch.Tensor:
        """(B, constant) -> (B, 4H): the constant part of every step's gates, both biases included."""
        return F.linear(x, self.weight_ih[:, :self.constant], self.bias_ih + self.bias_hh)

    def forward(self, x: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor],
                once: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        gates = once + F.linear(x, self.weight_ih[:, self.constant:]) + F.linear(h, self.weight_hh)
        i, f, g, o = gates.chunk(4, dim=1)  # torch's gate order
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def first_max(score: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The index of each row's largest score, the first one on ties (``torch.argmax``'s rule), given
    ``index`` = arange(A) as floats: ReduceMax, a comparison and ReduceMin in the exported graph.
    OpenVINO runs an ArgMax as a TopK, which took a fifth of the model's time at batch 8."""
    best = torch.where(score >= score.amax(dim=1, keepdim=True), index, torch.full_like(index, index.numel()))
    return best.amin(dim=1).long()


def face_oval(cx, cy, eyes: Tuple[float, float, float, float] = PreprocessSpec.eyes):
    """Whether points (cx, cy) (fractions of the input square; numpy arrays or tensors) lie inside the face:
    the ellipse through hairline, chin and cheekbones of the adult norms above, placed by the alignment
    template's eye centres (``eyes``; PreprocessSpec's default)."""
    lx, ly, rx, ry = eyes
    ipd, mx, my = math.hypot(rx - lx, ry - ly), (lx + rx) / 2, (ly + ry) / 2
    oy = my + (FACE_DOWN - FACE_UP) / 2 * ipd  # the ellipse's centre, below the eyes
    ax, ay = FACE_HALF_WIDTH * ipd, (FACE_UP + FACE_DOWN) / 2 * ipd
    return ((cx - mx) / ax) ** 2 + ((cy - oy) / ay) ** 2 <= 1.0


def anchor_tables(cfg: ALNetConfig) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(flat index of each anchor's top-left pixel (A,), boxes (A, 4) in [0, 1], overlap (A, A): 1 where
    IoU >= ``suppress_iou``, offsets (R*R,) of a crop's pixels from its top-left in the flattened image,
    each anchor's place (A,) in the navigator's G x G map). With ``anchor_region`` "face" the anchors are
    those whose centre lies in the face oval (``face_oval``), else every crop_size square of the grid."""
    side, r, s = cfg.input_size, cfg.crop_size, cfg.anchor_stride
    n = (side - r) // s + 1
    ys, xs = torch.meshgrid(torch.arange(n) * s, torch.arange(n) * s, indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    cell = torch.arange(n * n)
    if cfg.anchor_region == "face":
        keep = face_oval((xs + r / 2) / side, (ys + r / 2) / side)
        ys, xs, cell = ys[keep], xs[keep], cell[keep]
    starts = ys * side + xs
    boxes = torch.stack([xs, ys, xs + r, ys + r], dim=1).float() / side
    dx = (r - (xs[:, None] - xs[None]).abs()).clamp(min=0)
    dy = (r - (ys[:, None] - ys[None]).abs()).clamp(min=0)
    inter = (dx * dy).float()
    overlap = (inter / (2 * r * r - inter) >= cfg.suppress_iou - 1e-6).float()
    rows, cols = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
    return starts, boxes, overlap, (rows * side + cols).reshape(-1), cell


class AnchorAttention(Glimpses):
    """(image, g) -> (boxes (B,T,4), local logits (B,K), fused logits (B,K))."""

    explore_noise = 1.0  # scale of the Gumbel noise training samples its glimpses with (the trainer may anneal it)
    # training: the local and fused heads read the greedy glimpses (the test's), the ranking the sampled ones
    # (the trainer sets it: TrainConfig.greedy_heads)
    greedy_heads = False

    def __init__(self, cfg: ALNetConfig, global_features: int, global_head: nn.Linear):
        super().__init__(cfg, global_features, global_head)
        self.learned, self.size, self.candidates = cfg.selector == "lstm", cfg.crop_size, cfg.candidates
        starts, boxes, overlap, offsets, cell = anchor_tables(cfg)
        self.every_cell = len(cell) == ((cfg.input_size - cfg.crop_size) // cfg.anchor_stride + 1) ** 2
        for name, t in (("starts", starts), ("anchor_boxes", boxes), ("overlap", overlap), ("offsets", offsets),
                        ("index", torch.arange(len(starts), dtype=torch.float32)), ("cell", cell)):
            self.register_buffer(name, t, persistent=False)
        self.anchors = len(starts)
        # a learned score per step and anchor (for "static" the whole choice); zero: no anchor preferred
        self.prior = nn.Parameter(torch.zeros(cfg.steps, self.anchors))
        if self.learned:
            self.navigator = Navigator(cfg)
            self.summary = nn.Conv2d(cfg.nav_width, 2, 1)  # 2 numbers per anchor: the face's layout
            self.from_map, self.key_width = cfg.feedback == "map", cfg.nav_width
            # "map": the LSTM reads the map alone, so the choice depends on no layer an INT8 path quantises
            # (the same glimpses at every precision); "local": g and the local features too (the paper's loop)
            constant = 2 * self.anchors + (0 if self.from_map else global_features)
            self.lstm = SplitLSTMCell(constant, cfg.nav_width if self.from_map else self.local_features, cfg.hidden)
            self.query = nn.Linear(cfg.hidden, cfg.nav_width)
            self.scale = 1.0 / math.sqrt(cfg.nav_width)

    def _anchor_cells(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, C, G, G) -> (B, C, A): each anchor's cell of a map (a constant Gather when not every cell is one)."""
        flat = grid.flatten(2)
        return flat if self.every_cell else flat.index_select(2, self.cell)

    def cut(self, image: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
        """The anchors ``pick`` (N,) of ``image`` (N,3,D,D) as exact (N,3,R,R) copies of its pixels."""
        n, c = image.shape[0], image.shape[1]
        index = (self.starts[pick][:, None] + self.offsets[None]).unsqueeze(1).expand(n, c, -1)
        return torch.gather(image.flatten(2), 2, index).reshape(n, c, self.size, self.size)

    def _static_picks(self) -> list:
        """The anchors "static" reads on every face: the best of each step's scores, overlaps suppressed
        (worked out again only when the prior changed: no device sync on every call)."""
        key = (id(self.prior), self.prior._version)
        if getattr(self, "_picks_key", None) == key:
            return self._picks
        taken, picks = torch.zeros(self.anchors, device=self.prior.device), []
        for t in range(self.steps):
            a = int(torch.argmax(self.prior[t].detach() + SUPPRESS * taken))
            picks.append(a)
            taken = torch.maximum(taken, self.overlap[a])
        self._picks_key, self._picks = key, picks
        return picks

    def forward(self, image: torch.Tensor, g: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self._glimpses(image, g, explore=False)
        return out["boxes"], out["local_logits"], out["fused_logits"]

    def outputs(self, image: torch.Tensor, g: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self._glimpses(image, g, explore=self.training)

    def _glimpses(self, image: torch.Tensor, g: torch.Tensor, explore: bool) -> Dict[str, torch.Tensor]:
        b = image.shape[0]
        if not torch.jit.is_tracing() and tuple(image.shape[-2:]) != (self.pixels, self.pixels):
            raise ValueError(f"the attention stream reads the {self.pixels} px detail image (anchors are its "
                             f"pixels), got {tuple(image.shape[-2:])}")
        if not self.learned and not self.training:  # one local CNN call over the T constant crops
            with warnings.catch_warnings():  # constants of the model: the exported trace is right for it
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                picks = self._static_picks()
                rows = [divmod(int(self.starts[a]), self.pixels) for a in picks]
            r = self.size
            crops = torch.cat([image[:, :, y:y + r, x:x + r] for y, x in rows])
            feats = self.local(crops).reshape(self.steps, b, self.local_features)
            boxes = self.anchor_boxes[picks].unsqueeze(0).expand(b, -1, -1)
            return dict(zip(("local_logits", "fused_logits"), self._heads(g, feats.mean(dim=0))), boxes=boxes)
        view = self._view(image, g) if self.learned else None
        picks, scores, read = self._rollout(image, g, view, explore)
        if explore and self.greedy_heads:  # the heads read the test's glimpses, the ranking the sampled ones
            heads_picks, _, heads_read = self._rollout(image, g, view, False)
        else:
            heads_picks, heads_read = picks, read
        out = dict(zip(("local_logits", "fused_logits"), self._heads(g, heads_read.mean(dim=1))))
        out["boxes"] = torch.stack([self.anchor_boxes[p] for p in heads_picks], dim=1)
        if self.training:
            out.update(self._ranking_inputs(image, torch.stack(picks, 1), torch.stack(scores, 1), read))
        return out

    def _view(self, image: torch.Tensor, g: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """What the LSTM reads of the face, once per image: each anchor's key (B, C, A) and the LSTM's
        constant input (the map's layout, and g with feedback "local")."""
        grid = self.navigator(image)  # (B, C, G, G)
        keys, layout = self._anchor_cells(grid), self._anchor_cells(self.summary(grid)).flatten(1)
        return keys, self.lstm.once(layout if self.from_map else torch.cat([g, layout], dim=1))

    def _rollout(self, image: torch.Tensor, g: torch.Tensor, view, explore: bool):
        """The T steps of choice: each step's pick (B,), its scores (B, A), and the local features of the T
        glimpses (B, T, C). ``explore``: picks sampled by Gumbel-max over the scores."""
        b = image.shape[0]
        if self.learned:
            keys, once = view
            h = g.new_zeros(b, self.lstm.hidden_size)
            c = g.new_zeros(b, self.lstm.hidden_size)
            last = g.new_zeros(b, keys.shape[1] if self.from_map else self.local_features)
        taken = g.new_zeros(b, self.anchors)
        picks, scores, feats = [], [], []
        for t in range(self.steps):
            if self.learned:
                h, c = self.lstm(last, (h, c), once)
                score = torch.matmul(self.query(h).unsqueeze(1), keys).squeeze(1) * self.scale
                score = score + self.prior[t]
            else:
                score = self.prior[t].expand(b, -1)
            score = score + SUPPRESS * taken
            noisy = score - self.explore_noise * torch.log(-torch.log(torch.rand_like(score).clamp(1e-9, 1 - 1e-9))) \
                if explore else score  # training samples its glimpses (Gumbel-max): every anchor gets read
            pick = first_max(noisy, self.index)
            if self.learned and self.from_map:  # what the map holds at that anchor; the crops are read below
                last = torch.gather(keys, 2, pick[:, None, None].expand(-1, self.key_width, 1)).reshape(-1, self.key_width)
            else:
                last = self.local(self.cut(image, pick))
                feats.append(last)
            taken = torch.maximum(taken, self.overlap[pick])
            picks.append(pick)
            scores.append(score)
        if feats:
            return picks, scores, torch.stack(feats, dim=1)  # (B, T, C)
        crops = torch.cat([self.cut(image, p) for p in picks])  # feedback "map": the T x B crops in one call, t-major
        return picks, scores, self.local(crops).reshape(self.steps, b, self.local_features).transpose(0, 1)

    def _ranking_inputs(self, image, picks, scores, read) -> Dict[str, torch.Tensor]:
        """What the ranking loss reads: the local head's logits on each candidate glimpse (the T taken and
        ``candidates`` random ones), ``glimpse_logits`` (B, T+M, K), and every step's scores of them,
        ``glimpse_scores`` (B, T, T+M) (suppressed ones at about -1e4)."""
        b = image.shape[0]
        if self.candidates:
            extra = torch.randint(0, self.anchors, (b, self.candidates), device=image.device)
            crops = torch.cat([self.cut(image, extra[:, j]) for j in range(self.candidates)])  # j-major, no image copy
            more = self.local(crops).reshape(self.candidates, b, -1).transpose(0, 1)
            cand = torch.cat([picks, extra], dim=1)
            read = torch.cat([read, more], dim=1)
        else:
            cand = picks
        logits = self.local_head(read)
        return {"glimpse_logits": logits, "glimpse_scores": scores.gather(2, cand[:, None].expand(-1, self.steps, -1))}
