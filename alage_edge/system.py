"""What machine and library versions a result came from (imports nothing heavy)."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Dict, Optional, Tuple

PACKAGES = ("alage-edge", "numpy", "pillow", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino",
            "nncf", "tensorrt", "cuda-python", "opencv-python-headless")


def version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> Dict[str, str]:
    return {p: v for p in PACKAGES if (v := version(p))}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    keep = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                                        "avx_vnni") if f in flags]
                    return " ".join(keep)
    except OSError:
        pass
    return ""


def machine_info() -> Dict[str, object]:
    return {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
            "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version(), "system": platform.system(),
            "versions": package_versions()}


# Operations per cycle per core, by the widest unit the CPU reports, for the precision a run computes in
# (two FMA ports on AVX-512 / AVX2 server cores; a multiply-accumulate counts 2). AMX: 1024 INT8 / 512 BF16
# MACs a cycle per core (Intel's figures for Sapphire Rapids). A theoretical ceiling to read a share against.
OPS_PER_CYCLE = (  # (precision, flag that enables it, ops/cycle/core)
    ("int8", "amx_int8", 2048), ("int8", "avx512_vnni", 256), ("int8", "avx_vnni", 128), ("int8", "avx2", 128),
    ("bf16", "amx_bf16", 1024), ("bf16", "avx512_bf16", 128),
    ("fp32", "avx512f", 64), ("fp32", "avx2", 32),
)


def cpu_mhz() -> Optional[float]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def peak_gops(precision: str, flags: str = "", cores: Optional[int] = None,
              mhz: Optional[float] = None) -> Tuple[Optional[float], str]:
    """(theoretical peak in G ops/s or None, how it was computed) for a run computing in ``precision``
    (fp16 runs as fp32 on a CPU; bf16 without bf16 units, fp32; INT8 without VNNI/AMX, AVX2's pmaddubsw)."""
    flags = set((flags or cpu_flags()).split())
    cores, mhz = cores or os.cpu_count() or 1, mhz or cpu_mhz()
    want = {"fp16": "fp32"}.get(precision, precision)
    for prec in (want, "fp32"):
        for p, flag, ops in OPS_PER_CYCLE:
            if p == prec and flag in flags:
                if not mhz:
                    return None, f"{flag}: {ops} ops/cycle/core, clock unknown"
                return (cores * mhz * 1e-3 * ops,
                        f"{cores} cores x {mhz / 1e3:.2f} GHz (cpuinfo's clock: a VM's base clock, which turbo "
                        f"exceeds) x {ops} ops/cycle ({flag}, {p})")
    return None, "no AVX2 or wider unit reported"
