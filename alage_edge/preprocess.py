"""THE preprocessing: crop + resize + normalise a decoded picture (numpy + Pillow).

Training, calibration, parity and the runtime all call these functions, so
every stage sees identical pixels. The constants come from the model's
``PreprocessSpec``, which travels in every checkpoint and bundle manifest.
One resizer everywhere: Pillow's bilinear (OpenCV's bilinear differs).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from .images import _pil, to_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 224
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    # The centred square that is resized to size x size covers this fraction of the
    # shorter side (1.0: the whole shorter side, i.e. a centre crop of the square).
    crop_fraction: float = 1.0

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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        known = {k: d[k] for k in ("size", "mean", "std", "interpolation", "crop_fraction") if k in d}
        for k in ("mean", "std"):
            if k in known:
                if not isinstance(known[k], (list, tuple)):
                    raise ValueError(f"{k} must be a list of 3 numbers, got {known[k]!r}")
                known[k] = tuple(float(v) for v in known[k])
        spec = cls(**known)
        if spec.interpolation != "bilinear":
            raise ValueError(f"only bilinear interpolation is implemented, got {spec.interpolation!r}")
        return spec

    def region(self, rgb: np.ndarray, region: Optional["Geometry"] = None) -> "Geometry":
        """What the model sees of a picture: ``region`` (e.g. a detected face) or the centre crop."""
        h, w = rgb.shape[:2]
        r = region or centre_region(h, w, self)
        return Geometry(r.x0, r.y0, r.w, r.h, w, h)

    def apply(self, rgb: np.ndarray, region: Optional["Geometry"] = None) -> np.ndarray:
        """THE preprocessing: uint8 RGB (H, W, 3) -> float32 (3, S, S), cropped to ``region``
        (default: the centre crop), resized (Pillow bilinear) and normalised."""
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
            rgb = to_rgb(rgb)
        return normalize(resize_region(rgb, self.region(rgb, region), self.size), self)


@dataclass(frozen=True)
class Geometry:
    """Which region of the original picture (pixels) the model input shows."""

    x0: float
    y0: float
    w: float
    h: float
    image_w: int = 0
    image_h: int = 0

    def to_pixels(self, boxes01: np.ndarray) -> np.ndarray:
        """Boxes (..., 4) as x1,y1,x2,y2 fractions of the model input -> original pixels."""
        b = np.asarray(boxes01, dtype=np.float64)
        scale = np.array([self.w, self.h, self.w, self.h])
        offset = np.array([self.x0, self.y0, self.x0, self.y0])
        return b * scale + offset

    def box(self) -> Tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x0 + self.w, self.y0 + self.h)


def centre_region(h: int, w: int, spec: PreprocessSpec) -> Geometry:
    side = min(h, w) * spec.crop_fraction
    return Geometry((w - side) / 2.0, (h - side) / 2.0, side, side, w, h)


def resize_region(img: np.ndarray, region: Geometry, size: int) -> np.ndarray:
    """Crop ``region`` (float pixel box) of a uint8 RGB image and resize it to size x size."""
    Image, _ = _pil()
    h, w = img.shape[:2]
    if region.x0 == 0 and region.y0 == 0 and region.w == w == size and region.h == h == size:
        return img
    im = Image.fromarray(img)
    out = im.resize((size, size), Image.BILINEAR, box=region.box())
    return np.asarray(out)


def normalize(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float32 (3, H, W) or (N, 3, H, W)."""
    x = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(spec.std, dtype=np.float32)
    x = (x - mean) * inv_std
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))
