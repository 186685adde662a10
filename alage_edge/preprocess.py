"""THE preprocessing: crop + resize + normalise a decoded picture (numpy + Pillow).

Training, calibration, parity and the runtime all call these functions, so
every stage sees identical pixels. The constants come from the model's
``PreprocessSpec``, which travels in every checkpoint and bundle manifest.
One resizer everywhere: Pillow's bilinear (OpenCV's bilinear differs).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from .images import _pil, to_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BOUNDS_TOL = 0.05  # how far outside ``PreprocessSpec.bounds`` a preprocessed value may lie (rounding, resampling)


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 224
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    # The centred square that is resized to size x size covers this fraction of the
    # shorter side (1.0: the whole shorter side, i.e. a centre crop of the square).
    crop_fraction: float = 1.0
    # The alignment template: where a detected face's eye centres land in the model's input square
    # (x, y of the picture-left eye, then of the picture-right eye, as fractions of the side). The
    # default is the framing synth draws its faces in: eyes level at 42% height, 28% of the side apart.
    eyes: Tuple[float, float, float, float] = (0.36, 0.42, 0.64, 0.42)

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 16 <= self.size <= 4096:
            raise ValueError(f"size must be an integer from 16 to 4096, got {self.size!r}")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) != 3 or not all(isinstance(x, (int, float)) and np.isfinite(x) for x in v):
                raise ValueError(f"{name} must be 3 finite numbers (R, G, B), got {list(v)!r}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {list(self.std)!r}")
        if not isinstance(self.crop_fraction, (int, float)) or not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction!r}")
        e = self.eyes
        if len(e) != 4 or not all(isinstance(v, (int, float)) and 0 < v < 1 for v in e) or e[2] - e[0] < 0.05:
            raise ValueError(f"eyes must be 4 fractions in (0, 1), the left eye's x, y then the right eye's, "
                             f"at least 0.05 apart, got {list(e)!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"], d["eyes"] = list(self.mean), list(self.std), list(self.eyes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        known = {k: d[k] for k in ("size", "mean", "std", "interpolation", "crop_fraction", "eyes") if k in d}
        for k in ("mean", "std", "eyes"):
            if k in known:
                if not isinstance(known[k], (list, tuple)):
                    raise ValueError(f"{k} must be a list of numbers, got {known[k]!r}")
                known[k] = tuple(float(v) for v in known[k])
        spec = cls(**known)
        if spec.interpolation != "bilinear":
            raise ValueError(f"only bilinear interpolation is implemented, got {spec.interpolation!r}")
        return spec

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        """Per channel (lo, hi) of a preprocessed tensor: pixels in [0, 1] normalised with mean and std.
        ``infer`` refuses values further outside than BOUNDS_TOL (a tensor of 1e30 answered a plausible age)."""
        mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
        return -mean / std, (1.0 - mean) / std

    def random_input(self, batch: int = 1, seed: int = 0) -> np.ndarray:
        """A valid preprocessed batch of random pixels (benchmarks, checks): float32 (batch, 3, size, size)."""
        rgb = np.random.default_rng(seed).integers(0, 256, (batch, self.size, self.size, 3), dtype=np.uint8)
        return normalize(rgb, self)

    def square(self, rgb: np.ndarray, square: Optional["InputSquare"] = None) -> "InputSquare":
        """What the model sees of a picture: ``square`` (e.g. a detected face) or the centre crop."""
        h, w = rgb.shape[:2]
        r = square or centre_square(h, w, self)
        return InputSquare(r.x0, r.y0, r.w, r.h, w, h, r.angle)

    def apply(self, rgb: np.ndarray, square: Optional["InputSquare"] = None) -> np.ndarray:
        """THE preprocessing: uint8 RGB (H, W, 3) -> float32 (3, S, S), cropped to ``square``
        (default: the centre crop), resized (Pillow bilinear) and normalised."""
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
            rgb = to_rgb(rgb)
        return normalize(warp_square(rgb, self.square(rgb, square), self.size), self)

    def aligned_square(self, left_eye, right_eye, image_w: int = 0, image_h: int = 0) -> "InputSquare":
        """The square that puts these eye centres (picture pixels; left = the picture's left) on the template,
        rotated so that the eyes are level."""
        lx, ly, rx, ry = self.eyes
        le, re_ = np.asarray(left_eye, np.float64), np.asarray(right_eye, np.float64)
        d = re_ - le
        angle = float(np.arctan2(d[1], d[0]))
        side = float(np.hypot(*d)) / float(np.hypot(rx - lx, ry - ly))
        ux, uy = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
        mid = (le + re_) / 2
        centre = mid - side * (((lx + rx) / 2 - 0.5) * ux + ((ly + ry) / 2 - 0.5) * uy)
        return InputSquare(centre[0] - side / 2, centre[1] - side / 2, side, side, image_w, image_h, angle)


@dataclass(frozen=True)
class InputSquare:
    """Which square of the original picture (pixels) the model input shows: the box x0, y0, w, h turned
    by ``angle`` (radians, from the picture's x axis towards its y axis) about its centre."""

    x0: float
    y0: float
    w: float
    h: float
    image_w: int = 0
    image_h: int = 0
    angle: float = 0.0

    def to_quads(self, boxes01: np.ndarray) -> np.ndarray:
        """Boxes (..., 4) as x1,y1,x2,y2 fractions of the model input -> their corners (..., 4, 2) in picture
        pixels (top-left, top-right, bottom-right, bottom-left of the input)."""
        b = np.asarray(boxes01, dtype=np.float64)
        px = b[..., [0, 2, 2, 0]]
        py = b[..., [1, 1, 3, 3]]
        return self.point(np.stack([px, py], axis=-1))

    def point(self, p01: np.ndarray) -> np.ndarray:
        """Points (..., 2) as fractions of the model input -> picture pixels."""
        p = np.asarray(p01, dtype=np.float64)
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = (p[..., 0] - 0.5) * self.w, (p[..., 1] - 0.5) * self.h
        cx, cy = self.x0 + self.w / 2, self.y0 + self.h / 2
        return np.stack([cx + c * dx - s * dy, cy + s * dx + c * dy], axis=-1)

    def to_pixels(self, boxes01: np.ndarray) -> np.ndarray:
        """Boxes (..., 4) as x1,y1,x2,y2 fractions of the model input -> picture pixels (for a turned
        square: the upright box around each turned box; ``to_quads`` gives the corners)."""
        q = self.to_quads(boxes01)
        return np.concatenate([q.min(axis=-2), q.max(axis=-2)], axis=-1)

    def box(self) -> Tuple[float, float, float, float]:
        """The upright box around the square, in picture pixels."""
        return tuple(float(v) for v in self.to_pixels(np.array([0.0, 0.0, 1.0, 1.0])))


def centre_square(h: int, w: int, spec: PreprocessSpec) -> InputSquare:
    side = min(h, w) * spec.crop_fraction
    return InputSquare((w - side) / 2.0, (h - side) / 2.0, side, side, w, h)


def _region(img: np.ndarray, box, scale: float):
    """(Pillow image of the part of ``img`` that resampling ``box`` (x0, y0, x1, y1, picture pixels) can
    read, the box in that part's coordinates). Pillow's resize reads at most ``scale`` + 1 pixels beyond the
    box and clamps at the picture's edge, which stays the part's edge, so the result is the whole picture's
    without copying all of it (a face in a 12-megapixel photo) into Pillow."""
    Image, _ = _pil()
    h, w = img.shape[:2]
    m = int(np.ceil(max(scale, 1.0))) + 2
    x0, y0 = max(int(np.floor(box[0])) - m, 0), max(int(np.floor(box[1])) - m, 0)
    x1, y1 = min(int(np.ceil(box[2])) + m, w), min(int(np.ceil(box[3])) + m, h)
    if (x1 - x0) * (y1 - y0) * 2 > w * h:  # most of the picture: one copy of it is cheaper than two of a part
        return Image.fromarray(img), tuple(box)
    part = Image.fromarray(np.ascontiguousarray(img[y0:y1, x0:x1]))
    return part, (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)


def resize_square(img: np.ndarray, square: InputSquare, size: int) -> np.ndarray:
    """Crop ``square`` (float pixel box) of a uint8 RGB image and resize it to size x size."""
    Image, _ = _pil()
    h, w = img.shape[:2]
    if square.x0 == 0 and square.y0 == 0 and square.w == w == size and square.h == h == size:
        return img
    im, box = _region(img, square.box(), square.w / size)
    return np.asarray(im.resize((size, size), Image.BILINEAR, box=box))


def warp_square(img: np.ndarray, square: InputSquare, size: int) -> np.ndarray:
    """``resize_square`` for a turned square too: one warp from the picture's own pixels. A square much
    larger than the output is first reduced with Pillow's antialiased resize (to about one picture pixel
    per output pixel), then turned with a bilinear affine warp; outside the picture is black."""
    h, w = img.shape[:2]
    if square.angle == 0 and square.x0 >= 0 and square.y0 >= 0 and square.x0 + square.w <= w \
            and square.y0 + square.h <= h:
        return resize_square(img, square, size)
    Image, _ = _pil()
    k = square.w / size  # picture pixels per output pixel
    corners = square.to_quads(np.array([0.0, 0.0, 1.0, 1.0]))
    bx0, by0 = np.floor(np.clip(corners.min(0), 0, [w, h])).astype(int)
    bx1, by1 = np.ceil(np.clip(corners.max(0), 0, [w, h])).astype(int)
    if bx1 - bx0 < 1 or by1 - by0 < 1:  # entirely outside the picture
        return np.zeros((size, size, 3), np.uint8)
    if k > 1:  # reduce the part of the picture the square covers, antialiased
        sw, sh = max(1, round((bx1 - bx0) / k)), max(1, round((by1 - by0) / k))
        im, box = _region(img, (bx0, by0, bx1, by1), max((bx1 - bx0) / sw, (by1 - by0) / sh))
        im = im.resize((sw, sh), Image.BILINEAR, box=box)
        fx, fy = (bx1 - bx0) / sw, (by1 - by0) / sh
    else:
        im = Image.fromarray(np.ascontiguousarray(img[by0:by1, bx0:bx1]))
        fx = fy = 1.0
    # output pixel centre (u + .5, v + .5) -> picture point -> reduced-image coordinates (Pillow samples at
    # the coefficients applied to pixel centres)
    c, s = np.cos(square.angle), np.sin(square.angle)
    cx, cy = square.x0 + square.w / 2, square.y0 + square.h / 2
    sx, sy = square.w / size, square.h / size
    a, b = c * sx / fx, -s * sy / fy
    d, e = s * sx / fx, c * sy / fy
    c0 = (cx - bx0 - (c * square.w - s * square.h) / 2) / fx
    f0 = (cy - by0 - (s * square.w + c * square.h) / 2) / fy
    out = im.transform((size, size), Image.AFFINE, (a, b, c0, d, e, f0), resample=Image.BILINEAR)
    return np.asarray(out)


@functools.lru_cache(maxsize=16)
def _normalize_table(mean: Tuple[float, ...], std: Tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: each channel's value of every uint8 level, computed as the float path does."""
    levels = np.arange(256, dtype=np.float32)[:, None] * np.float32(1.0 / 255.0)
    inv_std = np.float32(1.0) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(((levels - np.asarray(mean, dtype=np.float32)) * inv_std).T)


def normalize(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float32 (3, H, W) or (N, 3, H, W)."""
    if isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim in (3, 4) and img.shape[-1] == 3:
        table = _normalize_table(tuple(spec.mean), tuple(spec.std))  # a lookup: 4x faster, the same numbers
        out = np.empty(img.shape[:-3] + (3,) + img.shape[-3:-1], np.float32)
        for c in range(3):  # mode "clip" is never used (uint8 < 256) but lets take write into a strided out
            np.take(table[c], img[..., c], out=out[..., c, :, :], mode="clip")
        return out
    x = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(spec.std, dtype=np.float32)
    x = (x - mean) * inv_std
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))
