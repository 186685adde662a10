"""Named models: ``build_model(name, head=..., **config)`` and ``list_models()``."""
from __future__ import annotations

from typing import Callable, Dict, List

from .alnet import ALNet, ALNetConfig

_REGISTRY: Dict[str, Callable[..., ALNetConfig]] = {}


def register_model(name: str, **defaults) -> None:
    def make(**config) -> ALNetConfig:
        return ALNetConfig(**{**defaults, **config, "arch": name})

    _REGISTRY[name] = make


def list_models() -> List[str]:
    return sorted(_REGISTRY)


def model_config(name: str, head: str = "dex", **config) -> ALNetConfig:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    from ..manifest import renamed

    return _REGISTRY[name](head=head, **renamed(config))


ATTENTION_OPTIONS = ("local_backbone", "local_width", "crop_size", "steps", "hidden", "s_min", "s_max",
                     "exact_crops", "fusion")


def is_global_only(name: str) -> bool:
    """A registered model without the attention stream (one head: global)."""
    return name in _REGISTRY and not _REGISTRY[name]().attention


def options_it_reads(name: str, config: dict) -> dict:
    """``config`` without the attention-stream options when ``name`` is a global-only model (they change
    nothing in it: a preset moving them must not make its finished runs look different)."""
    if is_global_only(name):
        return {k: v for k, v in config.items() if k not in ATTENTION_OPTIONS}
    return config


def build_model(name: str, head: str = "dex", **config) -> ALNet:
    """Build a registered model, e.g. ``build_model("al_resnet18", head="groups", global_size=128)``."""
    return ALNet(model_config(name, head=head, **config))


for _bb in ("resnet18", "resnet34", "resnet50", "ror18", "ror34"):
    register_model(f"al_{_bb}", backbone=_bb, attention=True)  # attention-LSTM models
    register_model(_bb, backbone=_bb, attention=False)  # global-only baselines for ablations
