"""The bundle's ``manifest.json``, read side: model config, preprocessing, stream I/O and
every artifact (ONNX, OpenVINO IR, TensorRT engine, Q/DQ ONNX) with its sha256.
(Export and convert write it through ``alage_edge.convert.bundle``.)

A bundle is the folder users copy to the device. Files are verified against
their sha256 before use, so a truncated copy or an edited file is refused
with a message that names it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .preprocess import PreprocessSpec

FORMAT = "alage-edge-bundle"
VERSION = 1
MANIFEST = "manifest.json"


class BundleError(ValueError):
    """A bundle is missing, incomplete, altered or of an unknown version."""


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Artifact:
    """One deployable form of the model: format + precision + a file per stream."""

    format: str  # onnx | openvino | tensorrt | qdq
    precision: str  # fp32 | fp16 | bf16 | int8
    files: Dict[str, str]  # stream -> path relative to the bundle
    info: Dict[str, Any] = field(default_factory=dict)  # tools, calibration, cache key ...

    @property
    def variant(self) -> Optional[str]:
        return self.info.get("variant")

    @property
    def key(self) -> str:
        return f"{self.format}-{self.precision}" + (f"-{self.variant}" if self.variant else "")

    def to_dict(self) -> dict:
        return {"format": self.format, "precision": self.precision, "files": dict(self.files), **self.info}

    @classmethod
    def from_dict(cls, d: dict) -> "Artifact":
        d = dict(d)
        return cls(d.pop("format"), d.pop("precision"), d.pop("files"), d)


class Manifest:
    def __init__(self, root, data: dict):
        self.root = Path(root)
        self.data = data

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, root) -> "Manifest":
        root = Path(root)
        path = root / MANIFEST
        if not root.is_dir():
            raise BundleError(f"{root}: no such bundle folder (make one with `alage-edge export`)")
        if not path.is_file():
            raise BundleError(f"{path}: missing; {root} is not a bundle written by `alage-edge export`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BundleError(f"{path}: not valid JSON ({e})") from e
        if data.get("format") != FORMAT:
            raise BundleError(f"{path}: not an alage-edge bundle manifest (format={data.get('format')!r})")
        if int(data.get("version", 0)) > VERSION:
            raise BundleError(f"{path}: bundle version {data['version']} is newer than this alage-edge "
                              f"reads ({VERSION}); upgrade the package")
        return cls(root, data)

    @property
    def model(self) -> dict:
        return self.data["model"]

    @property
    def head(self) -> str:
        return self.model["head"]

    @property
    def attention(self) -> bool:
        return bool(self.model.get("attention", True))

    @property
    def preprocess(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.data["preprocess"])

    @property
    def io(self) -> dict:
        return self.data["io"]

    def artifacts(self) -> List[Artifact]:
        return [Artifact.from_dict(a) for a in self.data.get("artifacts", [])]

    def find(self, fmt: str, precision: Optional[str] = None, **match) -> List[Artifact]:
        out = []
        for a in self.artifacts():
            if a.format != fmt or (precision and a.precision != precision):
                continue
            if all(a.info.get(k) == v for k, v in match.items()):
                out.append(a)
        return out

    def path(self, rel: str) -> Path:
        return self.root / rel

    def verify(self, rels: Optional[List[str]] = None) -> None:
        """Check that files exist and match their recorded sha256 (all files by default)."""
        files = self.data.get("files", {})
        for rel in (rels if rels is not None else list(files)):
            entry = files.get(rel)
            p = self.root / rel
            if entry is None:
                raise BundleError(f"{p}: not recorded in {self.root / MANIFEST}; re-run the step that wrote it")
            if not p.is_file():
                raise BundleError(f"{p}: missing from the bundle (recorded in {MANIFEST}); copy the whole "
                                  f"bundle folder or rebuild it")
            if p.stat().st_size != entry["bytes"] or sha256_file(p) != entry["sha256"]:
                raise BundleError(f"{p}: altered or truncated (sha256 does not match {MANIFEST}); "
                                  f"copy it again or rebuild the bundle")
