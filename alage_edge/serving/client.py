"""Pictures to a running alage-edge Triton server -> the same ``AgeResult``s as ``AgeEstimator.predict``.

    from alage_edge.serving.client import TritonClient
    with TritonClient("http://localhost:8000") as c:          # or grpc://localhost:8001
        for r in c.predict(["crowd.jpg"], detect_faces="hog"):
            print(r.source, r.age, r.face_box)
"""
from __future__ import annotations

from typing import Iterable, Union
from urllib.parse import urlparse

import numpy as np

from .repository import ENSEMBLE, PICTURES


class ServerGone(ConnectionError):
    """The server cannot be reached or dropped the connection; the message names it and what happened."""


def _gone(e: BaseException) -> bool:
    """Whether a client error means the server is unreachable (rather than a refused request)."""
    status = str(getattr(e, "status", lambda: "")() or "")
    return "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status or not status and "connect" in str(e).lower()


class TritonClient:
    def __init__(self, url: str, timeout: float = 60.0):
        u = urlparse(url if "://" in url else f"http://{url}")
        if u.scheme not in ("http", "grpc") or not u.hostname:
            raise ValueError(f"--url must look like http://host:8000 or grpc://host:8001, got {url!r}")
        self.protocol = u.scheme
        target = f"{u.hostname}:{u.port or (8000 if u.scheme == 'http' else 8001)}"
        try:
            if self.protocol == "http":
                import tritonclient.http as tc
                self.client = tc.InferenceServerClient(target, network_timeout=timeout, connection_timeout=timeout)
            else:
                import tritonclient.grpc as tc
                self.client = tc.InferenceServerClient(target)
        except ImportError as e:
            raise ImportError("a Triton client needs tritonclient: pip install 'alage-edge[serve]'") from e
        self.tc = tc
        self.url = url

    def describe(self) -> str:
        return f"Triton Inference Server at {self.url} ({self.protocol})"

    def _input(self, name: str, array: np.ndarray, dtype: str):
        i = self.tc.InferInput(name, list(array.shape), dtype)
        i.set_data_from_numpy(array)
        return i

    def infer(self, batch: np.ndarray) -> dict:
        """Preprocessed float32 (B, 3, S, S) -> the ensemble's age, std, group, group_probs (, boxes)."""
        r = self.client.infer(ENSEMBLE, [self._input("image", np.ascontiguousarray(batch, np.float32), "FP32")])
        out = {k: r.as_numpy(k) for k in ("age", "std", "group", "group_probs", "boxes") if r.get_output(k)}
        for k in ("age", "std", "group"):
            out[k] = out[k].reshape(-1)
        return out

    def picture(self, data: bytes, detect_faces: Union[bool, str] = False) -> dict:
        """One encoded picture -> per-face arrays (face and attention boxes in picture pixels)."""
        inputs = [self._input("image", np.frombuffer(data, np.uint8), "UINT8")]
        det = "hog" if detect_faces is True else (detect_faces or "")
        if det:
            inputs.append(self._input("detector", np.frombuffer(det.encode(), np.uint8), "UINT8"))
        r = self.client.infer(PICTURES, inputs)
        out = {k: r.as_numpy(k) for k in ("age", "std", "group", "group_probs", "boxes", "face_boxes", "face_scores")}
        for k in ("age", "std", "group", "face_scores"):
            out[k] = out[k].reshape(-1)
        return out

    def predict(self, sources: Iterable, detect_faces: Union[bool, str] = False, errors: str = "raise"):
        """Files (paths or bytes) -> ``Results`` like ``AgeEstimator.predict`` (no distribution: the server
        answers group probabilities)."""
        from http.client import HTTPException

        from tritonclient.utils import InferenceServerException

        from ..ages import GROUP_NAMES
        from ..estimator import ItemError, NoFace, Results
        from ..images import ImageError, describe
        from ..results import AgeResult

        out = Results()
        for src in sources:
            name = describe(src)
            try:
                try:
                    data = src if isinstance(src, bytes) else open(src, "rb").read()
                except OSError as e:
                    raise ImageError(f"{name}: cannot read it ({e.strerror or e})") from e
                try:
                    d = self.picture(data, detect_faces)
                except InferenceServerException as e:
                    if _gone(e):
                        raise ServerGone(f"{self.url}: the server cannot be reached ({e.message() or e})") from e
                    raise ImageError(f"{name}: the server refused it: {e.message() or e}") from e
                except (OSError, HTTPException) as e:
                    raise ServerGone(f"{self.url}: the connection failed or the server closed it while answering "
                                     f"{name} ({type(e).__name__}{': ' + str(e) if str(e) else ''})") from e
            except ImageError as e:
                if errors == "raise":
                    raise
                out.errors.append(ItemError(name, str(e)[len(name) + 2:]))  # the message less "name: "
                continue
            if len(d["age"]) == 0:
                out.no_face.append(NoFace(name))
            for i in range(len(d["age"])):
                g = int(d["group"][i])
                out.append(AgeResult(age=float(d["age"][i]), std=float(d["std"][i]), distribution=np.zeros(0),
                                     group=GROUP_NAMES[g], group_index=g, group_probs=d["group_probs"][i],
                                     face_box=d["face_boxes"][i].astype(np.float64), source=name,
                                     attention_boxes=d["boxes"][i].astype(np.float64) if d["boxes"].shape[1] else None))
        return out

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def metrics(url: str) -> dict:
    """Triton's Prometheus counters per model: inference requests and executions (merged batches)."""
    import urllib.request

    counts: dict = {}
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            for key in ("nv_inference_request_success", "nv_inference_exec_count", "nv_inference_count"):
                if line.startswith(key + "{"):
                    model = line.split('model="', 1)[1].split('"', 1)[0]
                    counts.setdefault(model, {})[key] = counts.get(model, {}).get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


