"""``synth``: a procedural fine-grained face-age set (numpy + Pillow, no download).

A stand-in that tests the mechanism, not a face data set. Each image is a
drawn face (random pose, skin tone, lighting, clutter, blotches, blur, noise)
whose age lives mostly in fine detail inside small regions that follow the
pose: lines at the outer eye corners, forehead lines and the folds beside the
mouth, whose count, length and contrast grow with age. The lines are drawn at
the output resolution as zero-mean 1-px light/dark/light creases: a model that reads
the face at half that resolution (through an anti-aliasing downsample) loses
most of them (``cue_survival`` measures how much), one that reads crops of the
full-resolution face keeps them. Age-independent crease strokes are clutter to
ignore; a weak global cue (greying hair) carries little. Every sample is a pure function of (seed, index) and comes
with the boxes of its age regions, so attention can be scored.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..ages import age_to_group
from .base import FaceSet, Record, Skips

GENERATOR_VERSION = 4  # bump when drawing changes: invalidates caches (4: age lines at the detail resolution)
VERSIONS = (4, 5)  # 5: the same faces with per-face placement (face shape, yaw, alignment error); see placement()
AGE_RANGE = (1, 95)
REGION_NAMES = ("left_eye_corner", "right_eye_corner", "forehead", "left_fold", "right_fold")
# Age regions in canonical face coordinates (fractions of an aligned face image):
# centre x, centre y, width, height.
REGIONS = ((0.245, 0.42, 0.20, 0.20), (0.755, 0.42, 0.20, 0.20), (0.50, 0.235, 0.30, 0.16),
           (0.39, 0.65, 0.16, 0.22), (0.61, 0.65, 0.16, 0.22))
SKIN = np.array([[255, 219, 172], [241, 194, 125], [224, 172, 105], [198, 134, 66], [141, 85, 36],
                 [255, 205, 180], [234, 192, 160]], np.float64)
HAIR = np.array([[40, 30, 25], [90, 60, 30], [160, 120, 60], [20, 20, 20], [120, 50, 20]], np.float64)
SPLIT_OFFSET = {"train": 0, "val": 10_000_000, "test": 20_000_000}
SS = 2  # supersampling factor of the drawing canvas


@dataclass
class SynthSample:
    image: np.ndarray  # uint8 (size, size, 3)
    age: float
    boxes: np.ndarray  # (5, 4) x1,y1,x2,y2 in [0, 1]: the true age regions


def _similarity(rng: np.random.Generator, pose_scale: float):
    angle = math.radians(rng.uniform(-15, 15) * pose_scale)
    scale = rng.uniform(0.85, 1.1) if pose_scale else 1.0
    shift = rng.uniform(-0.07, 0.07, size=2) * pose_scale
    ca, sa = math.cos(angle) * scale, math.sin(angle) * scale

    def tf(p):
        p = np.asarray(p, np.float64) - 0.5
        x = ca * p[..., 0] - sa * p[..., 1] + 0.5 + shift[0]
        y = sa * p[..., 0] + ca * p[..., 1] + 0.5 + shift[1]
        return np.stack([x, y], axis=-1)

    return tf, scale, angle


def placement(seed: int, index: int):
    """synth v5's per-face moves of the face's parts, in canonical coordinates, before the pose: a face
    shape (features spread or gathered, sx in 0.85..1.15 across, sy in 0.88..1.12 down, about the nose),
    yaw that a 5-point similarity alignment cannot undo (the middle of the face slides sideways up to
    0.07 of the face width while its outline stays, so one side is narrowed and the other widened) and an
    alignment error (shift with sigma 0.025 per axis, rotation with sigma 4 degrees). These sigmas are
    chosen, not measured on real photos. Its own random stream: the v4 face is drawn unchanged otherwise."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 2])
    sx, sy = rng.uniform(0.85, 1.15), rng.uniform(0.88, 1.12)
    yaw = rng.uniform(-0.07, 0.07)
    dx, dy = rng.normal(0, 0.025, 2)
    rot = math.radians(rng.normal(0, 4.0))
    cr, sr = math.cos(rot), math.sin(rot)

    def warp(p):
        p = np.asarray(p, np.float64)
        x, y = 0.5 + (p[..., 0] - 0.5) * sx, 0.47 + (p[..., 1] - 0.47) * sy
        x = x + yaw * np.clip(1 - ((p[..., 0] - 0.5) / 0.36) ** 2, 0, 1)  # the outline (|x - 0.5| >= 0.36) stays
        x, y = x - 0.5, y - 0.5
        return np.stack([cr * x - sr * y + 0.5 + dx, sr * x + cr * y + 0.5 + dy], axis=-1)

    return warp


def age_strength(age: float) -> float:
    """0 at the youngest, 1 at the oldest: how pronounced the fine age lines are."""
    return float(np.clip((age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0]), 0, 1))


def render(seed: int, index: int, size: int = 224, pose: float = 1.0, age: Optional[float] = None,
           version: int = 4) -> SynthSample:
    """The (seed, index) sample at ``size`` x ``size`` pixels. ``pose=0`` draws an upright, centred face;
    ``age`` draws the same face at another age (everything else unchanged); ``version=5`` moves the face's
    parts per face (``placement``)."""
    from PIL import Image, ImageDraw, ImageFilter

    if version not in VERSIONS:
        raise ValueError(f"synth version must be one of {VERSIONS}, got {version!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
    drawn = float(rng.integers(AGE_RANGE[0], AGE_RANGE[1] + 1))
    age = drawn if age is None else float(age)
    a = age_strength(age)
    tf, scale, angle = _similarity(rng, pose)
    if version == 5:
        warp, similar = placement(seed, index), tf
        tf = lambda p: similar(warp(p))  # noqa: E731
    n = size * SS

    def px(p):  # canonical fraction -> canvas pixels (as flat list for ImageDraw)
        return [tuple(q) for q in (tf(np.asarray(p, np.float64)) * n).tolist()]

    # Background: a colour ramp with clutter (shapes and lines in random colours).
    bg0, bg1 = rng.uniform(30, 225, size=3), rng.uniform(30, 225, size=3)
    ramp = np.linspace(0, 1, n, dtype=np.float32)[:, None, None]
    col = (bg0.astype(np.float32) * (1 - ramp) + bg1.astype(np.float32) * ramp).astype(np.uint8)
    im = Image.fromarray(np.broadcast_to(col, (n, n, 3)).copy())
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(4, 12))):
        x0, y0 = rng.uniform(0, n, 2)
        w, h = rng.uniform(0.05, 0.35, 2) * n
        col = tuple(int(c) for c in rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        if kind == 0:
            d.ellipse([x0, y0, x0 + w, y0 + h], fill=col)
        elif kind == 1:
            d.rectangle([x0, y0, x0 + w, y0 + h], fill=col)
        else:
            d.line([x0, y0, x0 + w, y0 + h], fill=col, width=int(rng.integers(1, 3) * SS))

    skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.85, 1.1)
    hair = HAIR[rng.integers(len(HAIR))]
    grey = np.clip(0.35 * a + rng.normal(0, 0.3), 0, 1)  # the weak global cue: greying hair, noisy
    hair = hair * (1 - grey) + np.array([185, 185, 185]) * grey
    skin_t = tuple(int(c) for c in np.clip(skin, 0, 255))
    hair_t = tuple(int(c) for c in np.clip(hair, 0, 255))

    def ellipse(cx, cy, rx, ry, k=48):
        t = np.linspace(0, 2 * np.pi, k, endpoint=False)
        return px(np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1))

    # Hair, face, neck.
    d.polygon(ellipse(0.5, 0.42, 0.40, 0.42), fill=hair_t)
    d.polygon(px([[0.40, 0.85], [0.60, 0.85], [0.62, 1.05], [0.38, 1.05]]), fill=skin_t)
    d.polygon(ellipse(0.5, 0.52, 0.34, 0.43), fill=skin_t)
    d.polygon(ellipse(0.5, 0.12, 0.30, 0.065), fill=hair_t)  # fringe

    # Eyes, brows, nose, mouth.
    dark = tuple(int(c) for c in np.clip(skin * 0.45, 0, 255))
    lip = tuple(int(c) for c in np.clip(skin * np.array([0.85, 0.55, 0.55]), 0, 255))
    eye_r = rng.uniform(0.045, 0.06)
    for ex in (0.36, 0.64):
        d.polygon(ellipse(ex, 0.42, eye_r, 0.022), fill=(245, 245, 240))
        d.polygon(ellipse(ex + rng.uniform(-0.01, 0.01), 0.42, 0.016, 0.016),
                  fill=tuple(int(c) for c in rng.uniform(20, 120, 3)))
        d.line(px([[ex - 0.06, 0.355], [ex, 0.34], [ex + 0.06, 0.355]]), fill=hair_t, width=3 * SS)
    d.line(px([[0.5, 0.45], [0.48, 0.58], [0.52, 0.59]]), fill=dark, width=max(1, SS))
    mw = rng.uniform(0.06, 0.09)
    d.line(px([[0.5 - mw, 0.72], [0.5, 0.735], [0.5 + mw, 0.72]]), fill=lip, width=3 * SS)

    # Low-frequency skin blotches (age-independent texture at any resolution).
    for _ in range(int(rng.integers(3, 8))):
        c = np.array([rng.uniform(0.25, 0.75), rng.uniform(0.3, 0.85)])
        r = rng.uniform(0.02, 0.06)
        shade = tuple(int(v) for v in np.clip(skin * rng.uniform(0.9, 1.08), 0, 255))
        d.polygon(ellipse(c[0], c[1], r, r * rng.uniform(0.6, 1.4), 16), fill=shade)

    # To the output size; blur and lighting act on the face, not on the fine detail drawn next.
    rng_face, rng_detail = rng, np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 1])
    im = im.resize((size, size), Image.BILINEAR)
    blur = rng_face.uniform(0, 0.8)
    if blur > 0.25:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    d = ImageDraw.Draw(im)

    def out_px(pts):  # canonical fractions -> output pixels
        return [tuple(q) for q in (tf(np.asarray(pts, np.float64)) * size).tolist()]

    def crease(pts, c):
        """A 1-px dark line between two 1-px light lines (+1, -2, +1) at the OUTPUT resolution: zero mean,
        energy near the Nyquist frequency, so a 2x anti-aliasing downsample keeps ~3% of it (1-D) while the
        full resolution keeps all of it."""
        q = np.round(np.asarray(out_px(pts), np.float64))
        dirv = q[-1] - q[0]
        # whole pixels across the line, along the axis most perpendicular to it: a clean profile
        normal = np.array([0.0, 1.0]) if abs(dirv[0]) >= abs(dirv[1]) else np.array([1.0, 0.0])
        delta = np.minimum(np.minimum(c * skin, 255 - skin), skin / 2)  # symmetric: no clipping, zero mean
        dark = tuple(int(v) for v in np.clip(skin - 2 * delta, 0, 255))
        light = tuple(int(v) for v in np.clip(skin + delta, 0, 255))
        for off, col in ((-1, light), (1, light), (0, dark)):
            d.line([tuple(v) for v in q + off * normal], fill=col, width=1)

    # Clutter at the detail resolution: short crease strokes anywhere on the skin, age-independent.
    for _ in range(int(rng_detail.integers(15, 35))):
        c = np.array([rng_detail.uniform(0.22, 0.78), rng_detail.uniform(0.2, 0.85)])
        dv = rng_detail.normal(0, 0.02, 2)
        crease([c, c + dv], rng_detail.uniform(0.05, 0.25))

    # The fine age detail: count, length and contrast grow with age; drawn as creases (above). Its own
    # random stream, so the same face drawn at another age differs only here (and in the hair colour).
    rng = rng_detail
    contrast = lambda: (0.12 + 0.38 * a) * rng.uniform(0.85, 1.15)  # noqa: E731
    count = lambda k: int(np.clip(round(k * a + rng.normal(0, 0.6)), 0, k))  # noqa: E731
    length = 0.35 + 0.65 * a
    for side in (-1, 1):  # crow's feet, fanning out from the outer eye corner
        cx = 0.5 + side * 0.22
        for j in range(count(6)):
            ang = math.radians(-35 + 70 * (j + rng.uniform(0.2, 0.8)) / 6)
            ln = 0.075 * length * rng.uniform(0.8, 1.2)
            p0 = np.array([cx, 0.42 + rng.uniform(-0.01, 0.01)])
            crease([p0, p0 + np.array([side * math.cos(ang), math.sin(ang)]) * ln], contrast())
    for j in range(count(5)):  # forehead lines
        y = 0.195 + 0.016 * j + rng.uniform(-0.003, 0.003)
        half = 0.12 * length * rng.uniform(0.8, 1.1)
        crease([[0.5 - half, y], [0.5 + half, y + rng.uniform(-0.006, 0.006)]], contrast())
    for side in (-1, 1):  # folds beside the mouth
        for j in range(count(4)):
            off = 0.012 * j
            crease([[0.5 + side * (0.075 + off), 0.57], [0.5 + side * (0.075 + off + 0.035 * length),
                                                          0.57 + 0.16 * length]], contrast())

    # Lighting and sensor noise.
    rng = rng_face
    img = np.asarray(im, dtype=np.float32)
    gdir = rng.normal(size=2)
    gdir /= np.linalg.norm(gdir) + 1e-9
    ramp = (np.arange(size, dtype=np.float32) / size - 0.5)
    light = 1 + np.float32(rng.uniform(0, 0.35)) * (ramp[None, :] * gdir[0] + ramp[:, None] * gdir[1])
    img = img * (light * np.float32(rng.uniform(0.8, 1.15)))[..., None]
    img += rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(rng.uniform(1, 4))
    image = np.clip(img, 0, 255).astype(np.uint8)

    boxes = []
    for cx, cy, w, h in REGIONS:
        corners = tf(np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                               [cx - w / 2, cy + h / 2], [cx + w / 2, cy + h / 2]]))
        boxes.append([*corners.min(0), *corners.max(0)])
    return SynthSample(image, age, np.clip(np.array(boxes), 0, 1))


class SynthFaces(FaceSet):
    """``n`` samples of one split; item i is ``render(seed, offset + i)``.

    ``preload()`` renders the whole split once (in parallel) and keeps it in
    memory, cached as ``.npy`` under ``cache_dir`` so later runs skip drawing.
    """

    def __init__(self, n: int = 2000, seed: int = 0, size: int = 224, split: str = "train", pose: float = 1.0,
                 cache_dir: Optional[str] = None, version: int = 4):
        if version not in VERSIONS:
            raise ValueError(f"synth version must be one of {VERSIONS}, got {version!r}")
        if split not in SPLIT_OFFSET:
            raise ValueError(f"synth split must be one of {sorted(SPLIT_OFFSET)}, got {split!r}")
        if n < 1:
            raise ValueError(f"synth needs n >= 1, got {n}")
        self.n, self.seed, self.size, self.split, self.pose = int(n), int(seed), int(size), split, float(pose)
        self.offset, self.version = SPLIT_OFFSET[split], int(version)
        self.name = f"synth:{split}:n={n},seed={seed},size={size}" + (f",version={version}" if version != 4 else "")
        self.cache_dir = cache_dir
        self.skips = Skips()
        self._images: Optional[np.ndarray] = None
        self._ages: Optional[np.ndarray] = None
        self._boxes: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return self.n

    def sample(self, i: int) -> SynthSample:
        if not 0 <= i < self.n:
            raise IndexError(f"synth index {i} out of range 0..{self.n - 1}")
        if self._images is not None:
            return SynthSample(self._images[i], float(self._ages[i]), self._boxes[i])
        return render(self.seed, self.offset + i, self.size, self.pose, version=self.version)

    def image(self, i: int) -> np.ndarray:
        return self.sample(i).image

    def record(self, i: int) -> Record:
        s = self.sample(i)
        return Record(None, age=s.age, subject=f"synth-{self.seed}-{self.offset + i}", boxes=s.boxes)

    def ages(self) -> np.ndarray:
        """Labels without drawing (the age is the generator's first draw)."""
        if self._ages is not None:
            return self._ages.astype(np.float64)
        return np.array([float(np.random.default_rng([self.seed & 0xFFFFFFFF, self.offset + i])
                               .integers(AGE_RANGE[0], AGE_RANGE[1] + 1)) for i in range(self.n)])

    def groups(self) -> np.ndarray:
        return age_to_group(self.ages())  # from the labels alone: no drawing

    def age_stds(self) -> np.ndarray:
        return np.full(self.n, np.nan)  # no vote statistics

    def boxes(self) -> np.ndarray:
        self.preload()
        return self._boxes

    def cache_path(self) -> Optional[Path]:
        if self.cache_dir is None:
            return None
        tag = f"v{GENERATOR_VERSION}-{self.split}-s{self.seed}-n{self.n}-px{self.size}-p{self.pose:g}" + ("" if self.version == 4 else f"-placement{self.version}")
        return Path(self.cache_dir) / f"synth-{tag}.npz"

    def preload(self, workers: Optional[int] = None, progress: bool = False) -> "SynthFaces":
        if self._images is not None:
            return self
        path = self.cache_path()
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    self._images, self._ages, self._boxes = z["images"], z["ages"], z["boxes"]
                return self
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache is redrawn
        images = np.empty((self.n, self.size, self.size, 3), np.uint8)
        ages = np.empty(self.n, np.float32)
        boxes = np.empty((self.n, len(REGIONS), 4), np.float32)
        workers = workers or min(os.cpu_count() or 1, 8)
        chunks = [range(a, min(a + 64, self.n)) for a in range(0, self.n, 64)]
        jobs = [(self.seed, self.offset, self.size, self.pose, self.version, c.start, c.stop) for c in chunks]
        it = map(_render_chunk, jobs) if workers <= 1 or self.n < 128 else None
        pool = None
        if it is None:
            import multiprocessing as mp

            pool = mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers)
            it = pool.imap(_render_chunk, jobs)
        if progress:
            from ..progress import bar

            it = bar(it, desc=f"drawing {self.name}", total=len(jobs), unit="chunk")
        try:
            for (a, b), (im, ag, bx) in zip(((c.start, c.stop) for c in chunks), it):
                images[a:b], ages[a:b], boxes[a:b] = im, ag, bx
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        self._images, self._ages, self._boxes = images, ages, boxes
        if path is not None:
            from ..atomic import write_with

            write_with(path, lambda tmp: np.savez(tmp, images=images, ages=ages, boxes=boxes))
        return self


def _render_chunk(job):
    seed, offset, size, pose, version, a, b = job
    samples = [render(seed, offset + i, size, pose, version=version) for i in range(a, b)]
    return (np.stack([s.image for s in samples]), np.array([s.age for s in samples], np.float32),
            np.stack([s.boxes for s in samples]).astype(np.float32))


def write_folder(root, n: int, seed: int = 0, size: int = 224, split: str = "train",
                 progress: bool = False) -> Path:
    """Write a split as ``root/images/*.png`` + ``root/labels.csv`` (path,age,box columns)."""
    from PIL import Image

    from ..atomic import write_text

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    ds = SynthFaces(n, seed, size, split)
    rows: List[str] = ["path,age," + ",".join(f"{r}_{k}" for r in REGION_NAMES for k in ("x1", "y1", "x2", "y2"))]
    it = range(n)
    if progress:
        from ..progress import bar

        it = bar(it, desc=f"synth -> {root}", total=n)
    for i in it:
        s = ds.sample(i)
        rel = f"images/{split}_{i:06d}.png"
        Image.fromarray(s.image).save(root / rel)
        rows.append(f"{rel},{s.age:g}," + ",".join(f"{v:.5f}" for v in s.boxes.reshape(-1)))
    write_text(root / "labels.csv", "\n".join(rows) + "\n")
    return root / "labels.csv"


def downsample2x(img: np.ndarray) -> np.ndarray:
    """The model's fixed 2x downsample ([1,3,3,1] x [1,3,3,1] / 64, stride 2, zero padding 1), in numpy."""
    k = np.array([1.0, 3.0, 3.0, 1.0]) / 8.0
    x = np.pad(np.asarray(img, np.float64), ((1, 1), (1, 1)) + ((0, 0),) * (np.ndim(img) - 2))
    h, w = x.shape[0] - 3, x.shape[1] - 3
    rows = sum(k[i] * x[i:i + h:2] for i in range(4))
    return sum(k[j] * rows[:, j:j + w:2] for j in range(4))


def cue_survival(n: int = 40, size: int = 224, seed: int = 0, version: int = 4) -> dict:
    """How much of the age cue survives the 2x downsample: the energy of (face at 95 - same face at 1)
    inside the true age regions, per pixel, after the downsample over before (1: all of it, 0: none)."""
    full, low = 0.0, 0.0
    for i in range(n):
        old, young = render(seed, i, size, age=95, version=version), render(seed, i, size, age=1, version=version)
        diff = old.image.astype(np.float64) - young.image.astype(np.float64)
        small = downsample2x(diff)
        for box, img, s in ((old.boxes, diff, size), (old.boxes, small, size // 2)):
            mask = np.zeros((s, s), bool)
            for x1, y1, x2, y2 in box:
                mask[int(y1 * s):int(np.ceil(y2 * s)), int(x1 * s):int(np.ceil(x2 * s))] = True
            e = float((img[mask] ** 2).mean())
            if s == size:
                full += e
            else:
                low += e
    return {"images": n, "size": size, "energy_ratio": low / full}
