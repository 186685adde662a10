"""Pictures people would rather look at: faces with their age and attention boxes drawn on."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 160), (255, 128, 0)]
COLOUR_NAMES = ["red", "blue", "yellow", "purple", "green", "orange"]


def box_legend(steps: int) -> str:
    """'attention steps 1/2/3: red, blue, yellow' for the first ``steps`` colours of COLOURS."""
    t = range(min(steps, len(COLOURS)))
    return f"attention steps {'/'.join(str(i + 1) for i in t)}: {', '.join(COLOUR_NAMES[i] for i in t)}"


def annotate(rgb: np.ndarray, results: Sequence, truth: Optional[float] = None, true_boxes=None,
             scale: int = 1) -> np.ndarray:
    """Draw on a copy: face boxes (green) with landmarks, the input square the model read (thin grey, turned
    when the face was aligned), attention boxes (one colour per step, turned with the face) and the age.
    Line widths and the font scale with the picture; labels stay inside it and do not overlap."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(rgb)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(im)
    side = max(im.size)
    lw = max(1, round(side / 400))
    font = _font(int(np.clip(side / 45, 11, 160)))
    if true_boxes is not None:
        for b in np.asarray(true_boxes) * np.array([im.width, im.height, im.width, im.height]):
            d.rectangle(list(b), outline=(255, 255, 255), width=1)
    placed: List[tuple] = []
    for r in results:
        fb = np.asarray(r.face_box, np.float64) * scale
        d.rectangle(list(fb), outline=(0, 230, 0), width=lw)
        square = getattr(r, "square", None)
        turned = square is not None and square.angle != 0
        if turned:
            d.polygon([tuple(p) for p in r.square_corners() * scale], outline=(200, 200, 200), width=max(1, lw // 2))
        corners = r.attention_corners() if turned else None
        if r.attention_boxes is not None:
            for t, b in enumerate(np.asarray(r.attention_boxes) * scale):
                colour = COLOURS[t % len(COLOURS)]
                if corners is not None:
                    d.polygon([tuple(p) for p in corners[t] * scale], outline=colour, width=lw)
                else:
                    d.rectangle(list(b), outline=colour, width=lw)
        face = getattr(r, "face", None)
        if face is not None and face.landmarks is not None:
            for x, y in face.landmarks * scale:
                d.ellipse([x - 1.5 * lw, y - 1.5 * lw, x + 1.5 * lw, y + 1.5 * lw], fill=(0, 230, 0))
        label = f"{r.age:.1f}±{r.std:.1f}" + (f" (true {truth:.0f})" if truth is not None else "")
        box = _place(d, label, font, fb, im.size, placed, lw)
        placed.append(box)
        d.rectangle(box, fill=(0, 0, 0))
        d.text((box[0] + lw, box[1] + lw), label, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def _font(size: int):
    """Pillow's own font at ``size`` px (a FreeType font from Pillow 10.1; the fixed bitmap font before)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _place(d, label: str, font, face_box, image_size, placed, pad: int) -> tuple:
    """A label box above the face (below it when there is no room), inside the picture, moved down
    past labels already placed."""
    x1, y1, x2, y2 = d.textbbox((0, 0), label, font=font)
    tw, th = x2 - x1 + 2 * pad, y2 + 2 * pad
    w, h = image_size
    x = float(np.clip(face_box[0], 0, max(0, w - tw)))
    y = face_box[1] - th if face_box[1] - th >= 0 else face_box[3]
    y = float(np.clip(y, 0, max(0, h - th)))
    for _ in range(len(placed) * 2 + 1):
        hit = [b for b in placed if x < b[2] and b[0] < x + tw and y < b[3] and b[1] < y + th]
        if not hit:
            break
        y = max(b[3] for b in hit)
        if y + th > h:  # no room below: try the column right of the blocking label
            y, x = float(np.clip(face_box[1] - th, 0, h - th)), min(max(b[2] for b in hit), max(0, w - tw))
    return (x, y, x + tw, y + th)


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
