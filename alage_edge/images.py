"""Decoding pictures: paths, bytes, arrays and PIL images -> RGB uint8 (numpy + Pillow).

EXIF orientation applied; grey, grey+alpha, RGBA, palette, CMYK and 16-bit images
converted; errors name the input.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

MAX_PIXELS = 100_000_000  # refuse larger images instead of exhausting memory
MIN_SIDE = 8


class ImageError(ValueError):
    """An input image is missing, unreadable or of a kind we cannot use."""


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


def load_image(src: Any, name: Optional[str] = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
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
        if w * h > max_pixels:
            raise ImageError(f"{name}: {w}x{h} pixels is larger than the limit of {max_pixels} pixels")
        im.load()
        im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: image too large ({e})") from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL names a buffer by its address: not for users
        why = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the data", str(e))
        raise ImageError(f"{name}: not a readable image ({why})") from e
    return _pil_to_rgb(im, name)


def _pil_to_rgb(im, name: str) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit files (Pillow opens some as 32-bit "I")
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageError(f"{name}: {im.mode} pixels outside 0..65535; not a 16-bit image")
        return to_rgb(a.astype(np.uint16), name)
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
    # The range comes from the dtype, never from the values (one bright pixel must not rescale a picture):
    # uint8 is 0..255, uint16 is 0..65535, floats are 0..1 (refused outside it), other integers are ambiguous.
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError(f"{name}: image array contains NaN or infinity")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < 0 or hi > 1:
            raise ImageError(f"{name}: a float image must hold values in [0, 1], got {lo:g}..{hi:g} "
                             f"(for 0..255 pixels pass uint8, e.g. arr.astype(np.uint8))")
        a = (a * 255.0).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        raise ImageError(f"{name}: {a.dtype} pixels are ambiguous; pass uint8 (0..255) or uint16 (0..65535)")
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
