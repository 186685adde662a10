"""Pictures people would rather look at: faces with their age and attention boxes drawn on."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 160), (255, 128, 0)]


def annotate(rgb: np.ndarray, results: Sequence, truth: Optional[float] = None, true_boxes=None,
             scale: int = 1) -> np.ndarray:
    """Draw face boxes (green), attention boxes (one colour per step) and the age on a copy."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(rgb)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(im)
    lw = max(1, round(min(im.size) / 160))
    if true_boxes is not None:
        for b in np.asarray(true_boxes) * np.array([im.width, im.height, im.width, im.height]):
            d.rectangle(list(b), outline=(255, 255, 255), width=1)
    for r in results:
        fb = np.asarray(r.face_box) * scale
        d.rectangle(list(fb), outline=(0, 230, 0), width=lw)
        if r.attention_boxes is not None:
            for t, b in enumerate(np.asarray(r.attention_boxes) * scale):
                d.rectangle(list(b), outline=COLOURS[t % len(COLOURS)], width=lw)
        label = f"{r.age:.1f}±{r.std:.1f}" + (f" (true {truth:.0f})" if truth is not None else "")
        tx, ty = fb[0] + 2, max(fb[1] - 12 * lw, 0)
        tw = d.textlength(label)
        d.rectangle([tx - 1, ty, tx + tw + 2, ty + 11], fill=(0, 0, 0))
        d.text((tx, ty), label, fill=(255, 255, 255))
    return np.asarray(im)


def sheet(tiles: List[np.ndarray], columns: int = 6, pad: int = 4, title: str = "") -> np.ndarray:
    """Tile pictures (padded to the largest) into one image, with an optional title line."""
    if not tiles:
        raise ValueError("no pictures to tile")
    if title:
        from PIL import Image, ImageDraw

        body = sheet(tiles, columns, pad)
        im = Image.new("RGB", (body.shape[1], body.shape[0] + 18), (255, 255, 255))
        im.paste(Image.fromarray(body), (0, 18))
        ImageDraw.Draw(im).text((pad, 3), title, fill=(0, 0, 0))
        return np.asarray(im)
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    out = np.full((rows * (h + pad) + pad, min(columns, len(tiles)) * (w + pad) + pad, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        out[pad + r * (h + pad): pad + r * (h + pad) + t.shape[0], pad + c * (w + pad): pad + c * (w + pad) + t.shape[1]] = t
    return out


def save_png(path, rgb: np.ndarray) -> None:
    from PIL import Image

    from .atomic import write_with

    write_with(path, lambda tmp: Image.fromarray(rgb).save(tmp, format="PNG"))
