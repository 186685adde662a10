"""The PyTorch reference: the checkpoint in the bundle, on CPU or CUDA.

On CUDA, ``cuda_graphs=True`` captures each stream once per batch size and
replays it (small batches are launch-bound: an H200 ran a model of this shape
16 ms eager against 2.4 ms replayed), and ``precision="fp16"`` runs half.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from .base import Backend, BackendError


class TorchBackend(Backend):
    name = "torch"
    formats = ("torch",)
    modules = ("torch",)
    extra = "torch"

    @staticmethod
    def default_graph(artifact) -> str:
        return "split"

    def _load_artifact(self) -> None:
        import torch

        from ..model import load_checkpoint

        rel = self.artifact.files["checkpoint"]
        self.manifest.verify([rel])
        device = self.device or "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        if self.precision not in ("fp32", "fp16"):
            raise BackendError(f"the torch backend runs fp32 or fp16, not {self.precision}")
        if self.precision == "fp16" and not device.startswith("cuda"):
            raise BackendError("fp16 with the torch backend needs a CUDA device (device='cuda')")
        self.torch = torch
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.model = load_checkpoint(self.manifest.path(rel)).to(device=device, dtype=self.dtype).eval()
        self.dev = torch.device(device)
        self.use_graphs = bool(self.options.get("cuda_graphs")) and device.startswith("cuda")
        self._graphs: Dict[Tuple[str, int], tuple] = {}
        self.thread_safe = not self.use_graphs

    def _module(self, stream: str):
        return {"global": self.model.global_stream, "attention": self.model.attention_stream}[stream]

    def _eager(self, stream: str, args):
        with self.torch.inference_mode():
            return self._module(stream)(*args)

    def _graphed(self, stream: str, args):
        """Replay a CUDA graph captured for this stream and batch size (captured on first use)."""
        torch = self.torch
        key = (stream, args[0].shape[0])
        if key not in self._graphs:
            static_in = [a.clone() for a in args]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(3):  # warm up cuDNN autotuning outside the capture
                    self._module(stream)(*static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                static_out = self._module(stream)(*static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        for dst, src in zip(static_in, args):
            dst.copy_(src)
        graph.replay()
        return static_out

    def _forward(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        from .base import finish

        x = self.torch.from_numpy(image).to(self.dev, self.dtype, non_blocking=True)
        run = self._graphed if self.use_graphs else self._eager
        g, global_logits = run("global", (x,))
        out = {"global_logits": global_logits}
        if self.model.attention_stream is not None:
            boxes, local_logits, fused = run("attention", (x, g))
            out.update(boxes=boxes, local_logits=local_logits, fused_logits=fused)
        return finish({k: v.float().cpu().numpy() for k, v in out.items()})

    def describe(self) -> str:
        mode = "CUDA graphs" if self.use_graphs else "eager"
        return f"torch {self.precision} on {self.dev} ({mode})"

    def _close(self) -> None:
        self._graphs = {}
        self.model = None
