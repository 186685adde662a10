"""Where a model's glimpses land in the aligned face: the share of glimpse centres inside a face oval drawn
from adult anthropometric norms in the alignment frame (not from synth), on synth's test faces and on real
faces (the six group pictures of tests/fixtures found and aligned by the dlib front end, and the astronaut).

The oval, from the alignment template (eye centres 0.28 of the side apart at 42% height) and Farkas' adult
norms in units of the interpupillary distance (about 62 mm): trichion 1.18 above the pupils, gnathion 1.81
below, zygion 1.08 to each side: centre (0.50, 0.51), semi-axes (0.30, 0.42) of the side.

    python experiments/glimpses_on_face.py runs/demo/bundle/model.pt [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from oracle_glimpses import report  # experiments/, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alage_edge.data import open_splits  # noqa: E402
from alage_edge.faces import find_faces  # noqa: E402
from alage_edge.model import load_checkpoint  # noqa: E402
from alage_edge.model.anchors import face_oval  # noqa: E402
from tests.fixtures import group_picture  # noqa: E402

DATA = "synth:n=3000,n_test=1000,seed=0,size=224,version=5"  # the claim's (train/claim.py: data_spec)


def real_inputs(spec) -> np.ndarray:
    from skimage import data as skd
    pictures = [group_picture(s)[0] for s in range(6)] + [skd.astronaut()]
    return np.stack([spec.apply(p, sq) for p in pictures for _, sq in find_faces(p, spec)])


@torch.no_grad()
def on_face(ck: str, n: int) -> list:
    model = load_checkpoint(ck).eval()
    spec = model.cfg.preprocess
    faces = open_splits(DATA, size=spec.size, cache_dir="runs/claim-v5b/cache")["test"]
    sets = {"synth v5 test": np.stack([spec.apply(faces.image(i)) for i in range(min(n, len(faces)))]),
            "real faces (group pictures + astronaut)": real_inputs(spec)}
    rows = []
    for name, x in sets.items():
        b = np.concatenate([model(torch.from_numpy(x[s:s + 50]))["boxes"].numpy() for s in range(0, len(x), 50)])
        inside = face_oval((b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2)  # (N, T)
        rows.append({"checkpoint": ck, "set": name, "faces": len(x),
                     "glimpse_centres_on_face": round(float(inside.mean()), 3),
                     "faces_all_on_face": round(float(inside.all(1).mean()), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    report([r for ck in args.checkpoints for r in on_face(ck, args.n)], args.json)


if __name__ == "__main__":
    main()
