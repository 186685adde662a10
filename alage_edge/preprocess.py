"""THE preprocessing: decode, to RGB, crop + resize, normalise (numpy + Pillow).

Training, calibration, parity and the runtime all call these functions, so
every stage sees identical pixels. The constants come from the model's
``PreprocessSpec``, which travels in every checkpoint and bundle manifest.
One resizer everywhere: Pillow's bilinear (OpenCV's bilinear differs).
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 100_000_000  # refuse larger images instead of exhausting memory
MIN_SIDE = 8


class ImageError(ValueError):
    """An input image is missing, unreadable or of a kind we cannot use."""


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 224
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    # The centred square that is resized to size x size covers this fraction of the
    # shorter side (1.0: the whole shorter side, i.e. a centre crop of the square).
    crop_fraction: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        known = {k: d[k] for k in ("size", "mean", "std", "interpolation", "crop_fraction") if k in d}
        for k in ("mean", "std"):
            if k in known:
                known[k] = tuple(float(v) for v in known[k])
        spec = cls(**known)
        if spec.interpolation != "bilinear":
            raise ValueError(f"only bilinear interpolation is implemented, got {spec.interpolation!r}")
        return spec


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

    def within(self, outer: "Geometry") -> "Geometry":
        """This geometry (relative to a crop described by ``outer``) in outer's picture."""
        sx, sy = outer.w / max(self.image_w, 1), outer.h / max(self.image_h, 1)
        return Geometry(outer.x0 + self.x0 * sx, outer.y0 + self.y0 * sy, self.w * sx, self.h * sy,
                        outer.image_w, outer.image_h)


def describe(src: Any) -> str:
    """A short name of an input for error messages."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    if isinstance(src, np.ndarray):
        return f"<array {src.shape} {src.dtype}>"
    return f"<{type(src).__name__}>"


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError as e:  # pragma: no cover - pillow is a dependency
        raise ImportError("decoding images needs Pillow: pip install pillow") from e
    return Image, ImageOps


def load_image(src: Any, name: Optional[str] = None) -> np.ndarray:
    """Decode ``src`` (path, bytes, array or PIL image) to an RGB uint8 array (H, W, 3).

    Applies the EXIF orientation; converts grey, grey+alpha, RGBA, palette,
    CMYK and 16-bit images to 8-bit RGB. Raises ImageError naming the input.
    """
    name = name or describe(src)
    Image, ImageOps = _pil()
    if isinstance(src, np.ndarray):
        return to_rgb(src, name)
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise ImageError(f"{name}: no such image file")
        opener = lambda: Image.open(path)  # noqa: E731
    elif isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise ImageError(f"{name}: empty byte string, expected an encoded image (JPEG, PNG, ...)")
        data = bytes(src)
        opener = lambda: Image.open(io.BytesIO(data))  # noqa: E731
    elif isinstance(src, Image.Image):
        opener = lambda: src  # noqa: E731
    else:
        raise ImageError(f"{name}: expected a path, bytes, an HxWx3 uint8 array or a PIL image, "
                         f"got {type(src).__name__}")
    try:
        im = opener()
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise ImageError(f"{name}: {w}x{h} pixels is larger than the limit of {MAX_PIXELS} pixels")
        im.load()
        im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: image too large ({e})") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: not a readable image ({e})") from e
    return _pil_to_rgb(im, name)


def _pil_to_rgb(im, name: str) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return to_rgb(np.asarray(im), name)
    if im.mode in ("F",):
        return to_rgb(np.asarray(im, dtype=np.float32), name)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return to_rgb(np.asarray(im), name)


def to_rgb(arr: np.ndarray, name: str = "array") -> np.ndarray:
    """An image array of any common layout -> contiguous uint8 (H, W, 3)."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: expected an image array HxW, HxWx1, HxWx3 or HxWx4, got shape {a.shape}")
    h, w = a.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ImageError(f"{name}: image is {w}x{h} pixels, expected at least {MIN_SIDE}x{MIN_SIDE}")
    if h * w > MAX_PIXELS:
        raise ImageError(f"{name}: {w}x{h} pixels is larger than the limit of {MAX_PIXELS} pixels")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError(f"{name}: image array contains NaN or infinity")
        hi = float(a.max()) if a.size else 0.0
        a = np.clip(a * 255.0 if hi <= 1.0 else a, 0, 255).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        hi = int(a.max()) if a.size else 0
        a = (a.astype(np.float64) / 257.0).round().astype(np.uint8) if hi > 255 else a.astype(np.uint8)
    else:
        raise ImageError(f"{name}: unsupported image dtype {a.dtype}")
    c = a.shape[2]
    if c == 1:
        a = np.repeat(a, 3, axis=2)
    elif c == 2:  # grey + alpha
        a = np.repeat(a[:, :, :1], 3, axis=2)
    elif c == 4:  # drop alpha (composited on nothing: faces are opaque)
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


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


def prepare(src: Any, spec: PreprocessSpec, region: Optional[Geometry] = None,
            name: Optional[str] = None) -> Tuple[np.ndarray, Geometry]:
    """One input -> (float32 (3, S, S), Geometry of what the model saw).

    ``region`` (e.g. a detected face) overrides the default centre crop.
    """
    img = load_image(src, name)
    h, w = img.shape[:2]
    region = region or centre_region(h, w, spec)
    region = Geometry(region.x0, region.y0, region.w, region.h, w, h)
    return normalize(resize_region(img, region, spec.size), spec), region


def prepare_batch(items: Sequence[Any], spec: PreprocessSpec) -> Tuple[np.ndarray, List[Geometry]]:
    xs, geos = [], []
    for item in items:
        x, g = prepare(item, spec)
        xs.append(x)
        geos.append(g)
    return np.stack(xs) if xs else np.zeros((0, 3, spec.size, spec.size), np.float32), geos


def augment(img: np.ndarray, spec: PreprocessSpec, rng: np.random.Generator,
            scale: Tuple[float, float] = (0.8, 1.0), ratio: Tuple[float, float] = (0.9, 1.1),
            flip: bool = True, jitter: float = 0.2) -> np.ndarray:
    """Training augmentation on uint8 RGB -> uint8 (S, S, 3); normalise with ``normalize``.

    Random resized crop with a mild scale range (faces are aligned: the crop
    must keep the face), horizontal flip, brightness/contrast/saturation jitter.
    """
    h, w = img.shape[:2]
    base = centre_region(h, w, spec)
    area = base.w * base.h * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw = min(np.sqrt(area * aspect), float(w))
    ch = min(np.sqrt(area / aspect), float(h))
    x0 = rng.uniform(0, w - cw) if w > cw else 0.0
    y0 = rng.uniform(0, h - ch) if h > ch else 0.0
    out = resize_region(img, Geometry(x0, y0, cw, ch, w, h), spec.size)
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    if jitter > 0:
        f = out.astype(np.float32)
        b, c, s = rng.uniform(1 - jitter, 1 + jitter, size=3)
        grey = f @ np.array([0.299, 0.587, 0.114], np.float32)
        f = f * b
        f = (f - grey.mean() * b) * c + grey.mean() * b
        g2 = (f @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        f = (f - g2) * s + g2
        out = np.clip(f, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
