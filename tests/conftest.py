"""Shared fixtures: tiny model configs and exported bundles built once per session."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("ALAGE_PROGRESS", "0")

# A compact configuration: every stage's code path, a fraction of the compute.
TINY = dict(img_size=64, width=8, local_width=8, crop_size=32, hidden=32)


def torch_or_skip():
    return pytest.importorskip("torch", reason="torch is not installed")


@pytest.fixture(scope="session")
def tiny_cfg():
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """An exported random-weight al_resnet18 bundle (64 px)."""
    torch = torch_or_skip()
    from alage_edge.model import build_model
    from convert.export import export_bundle

    torch.manual_seed(0)
    model = build_model("al_resnet18", **TINY)
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    export_bundle(model, out)
    return out


@pytest.fixture(scope="session")
def synth_images():
    from alage_edge.data.synth import render

    return [render(7, i, 64).image for i in range(6)]


def logits_close(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    """An element fails only if it exceeds both the absolute and the relative tolerance."""
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return bool(np.all((diff <= atol) | (diff <= rtol * np.abs(np.asarray(b, np.float64)))))
