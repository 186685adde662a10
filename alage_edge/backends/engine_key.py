"""The TensorRT engine cache key: everything that makes an engine invalid.

An engine runs only on the TensorRT version and GPU (or DLA core) it was built
for; it is also stale when the ONNX, the precision, the batch profile or the
calibration set changes. The key is stored in a sidecar JSON beside the engine
(not a header inside it, so ``trtexec`` still reads the file) and in the
manifest; a mismatch is refused with the command that rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Dict, List, Optional, Sequence, Tuple

# Fields that must equal the running system / bundle for an engine to be used.
SYSTEM_FIELDS = ("tensorrt", "device", "compute_capability")


def engine_key(tensorrt: str, device: str, compute_capability: str, precision: str, dla_core: Optional[int],
               profile: Dict[str, Sequence[Sequence[int]]], onnx_sha256: str, calibration: str = "") -> dict:
    return {"tensorrt": tensorrt, "device": device, "compute_capability": compute_capability,
            "precision": precision, "dla_core": dla_core,
            "profile": {k: [list(map(int, s)) for s in v] for k, v in sorted(profile.items())},
            "onnx_sha256": onnx_sha256, "calibration": calibration}


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def engine_name(stream: str, precision: str, dla_core: Optional[int], key: dict) -> str:
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return f"{stream}.{precision}{dla}.{key_hash(key)}.engine"


def mismatches(recorded: dict, tensorrt: str, device: str, compute_capability: str,
               onnx_sha256: Optional[str] = None) -> List[str]:
    """What differs between the engine's key and this system (empty: the engine may load)."""
    now = {"tensorrt": tensorrt, "device": device, "compute_capability": compute_capability}
    out = [f"{f}: built for {recorded.get(f)!r}, running {now[f]!r}" for f in SYSTEM_FIELDS
           if str(recorded.get(f)) != str(now[f])]
    if onnx_sha256 is not None and recorded.get("onnx_sha256") != onnx_sha256:
        out.append("onnx: the bundle's ONNX changed since the engine was built")
    return out


def rebuild_hint(bundle: str, precision: str, dla_core: Optional[int]) -> str:
    dla = f" --dla-core {dla_core}" if dla_core is not None else ""
    return f"rebuild on this device: alage-edge convert {bundle} --to tensorrt --precision {precision}{dla}"


def profile_shapes(batch: Tuple[int, int, int], inputs: Dict[str, Sequence[int]]) -> Dict[str, List[List[int]]]:
    """min/opt/max shapes per input from a (min, opt, max) batch and shapes with -1 as the batch."""
    return {name: [[b] + list(shape[1:]) for b in batch] for name, shape in inputs.items()}
