"""The PyTorch reference: the checkpoint in the bundle, on CPU or CUDA.

On CUDA, ``cuda_graphs=True`` replays CUDA graphs captured per stream for the
batch buckets 1, 2, 4, ... up to ``max_graph_batch`` (a batch is padded up to
its bucket and the outputs sliced back), so the cache holds at most one graph
per bucket and stream. Capture uses ``capture_error_mode="thread_local"`` so
other threads' CUDA work does not break it. ``precision="fp16"`` runs half.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from .base import Backend, BackendError, Source

OUTPUT_NAMES = {"global": ("g", "global_logits"), "attention": ("boxes", "local_logits", "fused_logits")}


def bucket(n: int) -> int:
    """The CUDA-graph batch bucket for a batch of n: the next power of two."""
    return 1 << max(0, int(n) - 1).bit_length()


class TorchBackend(Backend):
    name = "torch"
    modules = ("torch",)
    extra = "torch"
    runs = {"fp32": [Source("torch", "fp32")], "fp16": [Source("torch", "fp32")]}

    @classmethod
    def can_run(cls, manifest, artifact, device: Optional[str] = None) -> Optional[str]:
        if device and device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return f"device {device!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU"
        return None

    def _load(self, stream: str, path):
        import torch

        from ..model import load_checkpoint

        device = self.device or "cpu"
        if self.precision not in ("fp32", "fp16"):
            raise BackendError(f"the torch backend runs fp32 or fp16, not {self.precision}")
        if self.precision == "fp16" and not device.startswith("cuda"):
            raise BackendError("fp16 with the torch backend needs a CUDA device (device='cuda')")
        self.torch, self.dev = torch, torch.device(device)
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.use_graphs = bool(self.options.get("cuda_graphs")) and device.startswith("cuda")
        self.max_graph_batch = bucket(int(self.options.get("max_graph_batch", 64)))
        self.max_batch = self.max_graph_batch if self.use_graphs else None
        self.thread_safe = not self.use_graphs
        self._graphs: Dict[tuple, tuple] = {}
        model = load_checkpoint(path)
        for k in ("arch", "head", "global_size", "detail_scale", "attention", "steps"):
            if k in self.manifest.model and getattr(model.cfg, k) != self.manifest.model[k]:
                raise BackendError(f"{path}: the checkpoint's {k} is {getattr(model.cfg, k)!r}, the manifest "
                                   f"says {self.manifest.model[k]!r}; it is not this bundle's model")
        return model.to(device=self.dev, dtype=self.dtype).eval()

    def _module(self, stream: str):
        model = self._handles["checkpoint"]
        return {"global": model.global_stream, "attention": model.attention_stream}[stream]

    def _run(self, stream: str, feeds: Dict[str, object]) -> Dict[str, object]:
        x = feeds["image"]
        if isinstance(x, np.ndarray):
            x = self.torch.from_numpy(x).to(self.dev, self.dtype, non_blocking=True)
        args = (x,) if stream == "global" else (x, feeds["g"])
        if self.use_graphs:
            outs = self._graphed(stream, args)
        else:
            with self.torch.inference_mode():
                outs = self._module(stream)(*args)
        res = dict(zip(OUTPUT_NAMES[stream], outs))
        res["image"] = x  # the attention stream reads the same device copy
        return res

    def _graphed(self, stream: str, args):
        """Replay the graph of this stream and bucket (captured on first use); outputs sliced and cloned."""
        torch, n = self.torch, args[0].shape[0]
        b = bucket(n)
        if b > self.max_graph_batch:
            raise BackendError(f"batch {n} is over max_graph_batch={self.max_graph_batch}")
        if (stream, b) not in self._graphs:
            static_in = [torch.zeros((b,) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device) for a in args]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(3):  # warm up cuDNN autotuning outside the capture
                    self._module(stream)(*static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"), torch.inference_mode():
                static_out = self._module(stream)(*static_in)
            self._graphs[(stream, b)] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[(stream, b)]
        for dst, src in zip(static_in, args):
            dst[:n].copy_(src)
            if n < b:
                dst[n:].zero_()
        graph.replay()
        return tuple(o[:n].clone() for o in static_out)

    def _host(self, value) -> np.ndarray:
        return value.float().cpu().numpy()

    def describe(self) -> str:
        mode = f"CUDA graphs, buckets up to {self.max_graph_batch}" if self.use_graphs else "eager"
        return f"torch {self.precision} on {self.dev} ({mode})"

    def _close(self) -> None:
        self._graphs = {}
