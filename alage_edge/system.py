"""What machine and library versions a result came from (imports nothing heavy)."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Dict, Optional

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
