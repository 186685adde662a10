"""What a TensorRT build does on a given TensorRT version: pure decisions, no TensorRT needed.

Everything here is tested on machines without TensorRT; ``tensorrt.py`` applies
it with the real API. Version facts (TensorRT docs, 10.x -> 11.x migration):
8.5 still defaults to implicit-batch networks (the ONNX parser needs
EXPLICIT_BATCH); 10.x ignores that flag and offers STRONGLY_TYPED; 11.x is
always strongly typed and removed the FP16/INT8 builder flags, the INT8
calibrator and the precision-constraint flags (fp16 comes from an fp16 ONNX,
INT8 from Q/DQ nodes). DLA is unavailable on 11.0-11.3; 11.4.0 has it on
Windows on ARM only, 11.4.1 on Linux too, for fp16-typed networks (JetPack >= 7.2.2).
TensorRT 8.x (JetPack 5) is not a supported target: its Python bindings are for
the system Python 3.8 (this package needs 3.9+), its ``trt.nptype`` fails on
numpy >= 1.24, and JetPack 5 ships CUDA 11.4, for which no extra installs bindings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .int8_scope import INT8_SCOPES


class BuildError(RuntimeError):
    pass


def major_version(version: str) -> int:
    return int(version.split(".")[0])


def minor_version(version: str) -> int:
    parts = version.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def patch_version(version: str) -> int:
    parts = version.split(".")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0


SUPPORTED = "TensorRT 10.x (JetPack 6, CUDA 12 hosts) and 11.x (CUDA 12/13 hosts, JetPack 7)"


def version_problem(version: str) -> Optional[str]:
    """Why this TensorRT is not a supported target (None: supported)."""
    if major_version(version) < 10:
        return (f"TensorRT {version} is not supported (JetPack 5's 8.5 binds the system Python 3.8 and fails on "
                f"numpy >= 1.24); alage-edge supports {SUPPORTED}")
    return None


def calibration_batch(total: int, opt: int, has_calibration_profile: bool) -> int:
    """The batch TensorRT calibrates with. It calibrates at the calibration profile's opt shape: with fewer
    images than the engine profile's opt batch, a calibration profile of the set's size is set (TensorRT 8.5-10
    have ``set_calibration_profile``), or the set is refused, never read past its end."""
    if total >= opt:
        return opt
    if not has_calibration_profile:
        raise BuildError(f"the calibration set has {total} images, fewer than the profile's opt batch {opt}, and "
                         f"this TensorRT cannot calibrate at another batch: use --calib-size >= {opt} or a smaller "
                         f"opt batch (--batch 1,{max(1, total)},MAX)")
    return total


def choose_int8_path(version: str, requested: Optional[str] = None) -> str:
    """'calibrator' or 'qdq' for this TensorRT version (11 removed the calibrator API)."""
    major = major_version(version)
    if requested == "calibrator" and major >= 11:
        raise BuildError(f"TensorRT {version} has no INT8 calibrator API (removed in 11): use --int8-path qdq")
    if requested:
        return requested
    return "calibrator" if major <= 10 else "qdq"


def dla_problem(version: str, precision: str) -> Optional[str]:
    """Why --dla-core cannot be honoured on this TensorRT (None: it can be tried)."""
    major, minor = major_version(version), minor_version(version)
    if precision == "fp32":
        return "DLA runs fp16 or int8 only: use --precision fp16 or int8 with --dla-core"
    if major == 11 and minor < 4:
        return f"TensorRT {version} has no DLA support (11.0-11.3); use JetPack 6 (TensorRT 10.3) for DLA"
    if (major, minor) == (11, 4) and patch_version(version) == 0 and not windows_on_arm():
        return (f"TensorRT {version} supports DLA on Windows on ARM only; Linux needs 11.4.1 "
                f"(or JetPack 6's TensorRT 10.3)")
    if major == 11 and precision != "fp16":
        return (f"TensorRT {version} runs DLA only for fp16-typed networks (and on JetPack >= 7.2.2); "
                f"use --precision fp16 with --dla-core")
    return None


def windows_on_arm() -> bool:
    import platform

    return platform.system() == "Windows" and platform.machine().lower() in ("arm64", "aarch64")


@dataclass(frozen=True)
class StreamPlan:
    """How one stream is built: its precision, whether the network is strongly typed, the builder
    flags, and what runs the layers that are not INT8 (recorded in the engine's sidecar)."""

    precision: str
    strongly_typed: bool
    flags: Tuple[str, ...]  # BuilderFlag names to set
    clear: Tuple[str, ...]  # BuilderFlag names to clear
    fp16_onnx: bool  # build from an fp16 copy of the source ONNX (AutoCast)
    source: str  # "onnx" (export's fp32 graph) or "qdq" (the s8s8 Q/DQ graph)
    mixed: str  # what the non-quantised layers run in, in words


def plan_stream(version: str, precision: str, stream: str, int8_path: Optional[str], scope: str) -> StreamPlan:
    major = major_version(version)
    if scope not in INT8_SCOPES:
        raise BuildError(f"--int8-scope must be one of {', '.join(INT8_SCOPES)}, got {scope!r}")
    if precision == "int8" and stream == "attention" and scope == "global":
        precision = "fp16"  # the attention stream stays out of INT8 altogether
    if precision == "fp32":  # TF32 is on by default; parity's fp32 bound (0.05 y) needs plain fp32
        return StreamPlan("fp32", major >= 11, (), ("TF32",), False, "onnx", "fp32 (TF32 off)")
    if precision == "fp16":
        if major >= 11:
            return StreamPlan("fp16", True, (), (), True, "onnx", "fp16 ONNX (AutoCast), strongly typed")
        return StreamPlan("fp16", False, ("FP16",), (), False, "onnx", "fp16 by the FP16 builder flag")
    if int8_path == "calibrator":
        return StreamPlan("int8", False, ("INT8", "FP16"), (), False, "onnx",
                          "implicit INT8 (calibrator), other layers fp16; attention glue pinned to fp32")
    if major >= 11:
        return StreamPlan("int8", True, (), (), True, "qdq",
                          "explicit INT8 (Q/DQ), other layers fp16 (fp16 Q/DQ ONNX by AutoCast), strongly typed")
    return StreamPlan("int8", False, ("INT8", "FP16"), (), False, "qdq",
                      "explicit INT8 (Q/DQ), other layers fp16 by the FP16 builder flag")


def network_flags(trt, version: str, strongly_typed: bool) -> int:
    """create_network flags: EXPLICIT_BATCH before 10 (8.5 defaults to implicit batch), STRONGLY_TYPED on 10
    when asked (11 is always strongly typed and needs no flag)."""
    major, flags = major_version(version), 0
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed and major == 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if strongly_typed and major < 10:
        raise BuildError(f"TensorRT {version} has no strongly typed networks")
    return flags


def calib_cache_name(stream: str, onnx_sha256: str, calib_sha256: str) -> str:
    """A calibration cache belongs to one ONNX graph and one calibration set: both are in its name, so a
    retrained model or another --data/--calib-size never reuses stale scales."""
    return f"{stream}.int8.{onnx_sha256[:12]}.{calib_sha256[:12]}.calib"


def calib_batches(feeds: Sequence[Dict[str, np.ndarray]], batch: int) -> Tuple[int, List[Dict[str, np.ndarray]]]:
    """(batch size, full batches) for the calibrator: the profile's opt batch, or the whole set when it is
    smaller; the remainder is dropped (a calibrator feeds equal batches)."""
    total = sum(len(f["image"]) for f in feeds)
    if total == 0:
        raise BuildError("the calibration set is empty")
    b = min(int(batch), total)
    merged = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    return b, [{k: v[i:i + b] for k, v in merged.items()} for i in range(0, total - b + 1, b)]


def qdq_is_current(info: dict, calib_sha256: str, scope: str) -> bool:
    """Whether a recorded Q/DQ artifact was calibrated on this set with this scope (else rebuild it)."""
    c = info.get("calibration", {})
    return c.get("sha256") == calib_sha256 and c.get("scope") == scope
