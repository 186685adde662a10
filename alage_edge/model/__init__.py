"""The PyTorch model (needs torch): AL-ResNet / AL-RoR and the global-only baselines."""
from .alnet import ALNet, ALNetConfig, AttentionStream, GlobalStream, count_flops
from .checkpoint import CheckpointError, load_checkpoint, load_pretrained, read_checkpoint, save_checkpoint
from .registry import build_model, list_models, model_config, register_model

__all__ = ["ALNet", "ALNetConfig", "AttentionStream", "GlobalStream", "CheckpointError", "build_model",
           "count_flops", "list_models", "load_checkpoint", "load_pretrained", "model_config",
           "read_checkpoint", "register_model", "save_checkpoint"]
