"""Checkpoints: {format, config, state_dict, meta}, loadable with ``weights_only=True``.

``load_checkpoint(path)`` rebuilds the model from the config stored in the
file, so export and evaluation need nothing but the file.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..atomic import write_with
from ..manifest import first_line
from .alnet import ALNet, ALNetConfig

FORMAT = "alage-edge-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or not one of ours."""


def save_checkpoint(path, model: ALNet, meta: Optional[dict] = None, **extra: Any) -> Path:
    """Write atomically; ``extra`` (optimiser state, epoch, ...) goes beside the weights."""
    model = getattr(model, "module", model)  # unwrap DDP
    obj = {"format": FORMAT, "version": VERSION, "config": model.cfg.to_dict(),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
           "meta": dict(meta or {}), **extra}
    return write_with(path, lambda tmp: torch.save(obj, tmp))


def read_checkpoint(path, map_location: str = "cpu") -> Dict[str, Any]:
    """The raw checkpoint dict, safely (no code from the file is executed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's text would advise weights_only=False: never
        raise CheckpointError(f"{path}: refused: it holds Python objects other than tensors and plain data, "
                              f"which could run code when loaded; an alage-edge checkpoint holds none") from e
    except Exception as e:  # corrupt zip, truncated file ...
        why = (str(e).splitlines() or ["the file is empty or ends too early"])[0][:200]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {why})") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an alage-edge checkpoint (expected a dict with "
                              f"format={FORMAT!r}; for an ImageNet backbone use --pretrained)")
    if obj.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {obj['version']} is newer than this "
                              f"alage-edge understands ({VERSION}); upgrade the package")
    return obj


def load_checkpoint(path, map_location: str = "cpu") -> ALNet:
    """Rebuild the model from the checkpoint's config and load its weights (eval mode)."""
    obj = read_checkpoint(path, map_location)
    try:
        model = ALNet(ALNetConfig.from_dict(obj["config"]))
        model.load_state_dict(obj["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: config and weights do not match ({first_line(e, 300)})") from e
    model.checkpoint_meta = obj.get("meta", {})
    return model.eval()


def torchvision_filter(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The one place that maps foreign names onto ours: unwrap containers, drop
    ``module.`` (DDP) prefixes and the ImageNet classifier ``fc.*``."""
    for key in ("state_dict", "model"):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
    out = {}
    for k, v in state_dict.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if not k.startswith("fc."):
            out[k] = v
    return out


def load_pretrained(backbone: torch.nn.Module, path) -> None:
    """Load a torchvision-format ImageNet checkpoint into a ResNet backbone (strict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such pretrained checkpoint")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable PyTorch state dict ({type(e).__name__})") from e
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(sd).__name__}")
    try:
        backbone.load_state_dict(torchvision_filter(sd), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not fit the {type(backbone).__name__} backbone "
                              f"(torchvision-format weights of the same depth and width 64 are expected): "
                              f"{first_line(e, 300)}") from e
