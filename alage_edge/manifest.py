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
        check_manifest(data, path)
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
        """A file of the bundle; a path that leaves the bundle (.., absolute, a symlink out) is refused:
        whoever writes the manifest also writes its hashes, so the hash check cannot stop that."""
        p = Path(rel)
        root = self.root.resolve()
        full = (self.root / p).resolve()
        if p.is_absolute() or (full != root and root not in full.parents):
            raise BundleError(f"{self.root / MANIFEST}: file path {str(rel)!r} leaves the bundle folder; refused")
        return self.root / p

    def verify(self, rels: Optional[List[str]] = None) -> None:
        """Check that files exist and match their recorded sha256 (all files by default)."""
        files = self.data.get("files", {})
        for rel in (rels if rels is not None else list(files)):
            entry = files.get(rel)
            p = self.path(rel)
            if entry is None:
                raise BundleError(f"{p}: not recorded in {self.root / MANIFEST}; re-run the step that wrote it")
            if not p.is_file():
                raise BundleError(f"{p}: missing from the bundle (recorded in {MANIFEST}); copy the whole "
                                  f"bundle folder or rebuild it")
            if p.stat().st_size != entry["bytes"] or sha256_file(p) != entry["sha256"]:
                raise BundleError(f"{p}: altered or truncated (sha256 does not match {MANIFEST}); "
                                  f"copy it again or rebuild the bundle")


# Model config keys as bundles and checkpoints written before a rename call them: old name -> name.
OLD_MODEL_KEYS = {"img_size": "global_size"}


def renamed(model: dict) -> dict:
    """A model config with today's key names (bundles and checkpoints keep loading after a rename)."""
    if not isinstance(model, dict) or not any(k in model for k in OLD_MODEL_KEYS):
        return model
    return {OLD_MODEL_KEYS.get(k, k): v for k, v in model.items()}


def check_manifest(data, path) -> None:
    """Refuse a manifest whose fields have the wrong kind or value, naming the field and what was expected."""
    def bad(field: str, expected: str, got) -> BundleError:
        return BundleError(f"{path}: field {field!r} must be {expected}, got {got!r}")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise BundleError(f"{path}: not an alage-edge bundle manifest (format={got!r})")
    v = data.get("version")
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise bad("version", "a positive integer", v)
    if v > VERSION:
        raise BundleError(f"{path}: bundle version {v} is newer than this alage-edge reads ({VERSION}); "
                          f"upgrade the package")
    for key, kind in (("model", dict), ("preprocess", dict), ("io", dict), ("files", dict), ("artifacts", list)):
        if key not in data:
            raise BundleError(f"{path}: field {key!r} is missing (the bundle is incomplete: export it again)")
        if not isinstance(data[key], kind):
            raise bad(key, f"a JSON {'object' if kind is dict else 'array'}", data[key])
    model = data["model"] = renamed(data["model"])
    if model.get("head") not in ("dex", "groups"):
        raise bad("model.head", "'dex' or 'groups'", model.get("head"))
    try:
        spec = PreprocessSpec.from_dict(data["preprocess"])
    except (TypeError, ValueError) as e:
        raise BundleError(f"{path}: field 'preprocess' is invalid: {e}") from None
    want = int(model.get("global_size", 0)) * int(model.get("detail_scale", 1))
    if want and spec.size != want:
        raise bad("preprocess.size", f"the model's input size {want}", spec.size)
    io = data["io"]
    for stream in ("global", "attention") if model.get("attention", True) else ("global",):
        if not isinstance(io.get(stream), dict):
            raise bad(f"io.{stream}", "an object with the stream's 'inputs' and 'outputs'", io.get(stream))
    for stream, entry in io.items():
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), dict) for k in ("inputs", "outputs"))):
            raise bad(f"io.{stream}", "an object with 'inputs' and 'outputs' (name -> shape)", entry)
    for i, a in enumerate(data["artifacts"]):
        if not (isinstance(a, dict) and isinstance(a.get("format"), str) and isinstance(a.get("files"), dict)):
            raise bad(f"artifacts[{i}]", "an object with 'format', 'precision' and 'files'", a)
    for rel, e in data["files"].items():
        if not (isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int)):
            raise bad(f"files[{rel!r}]", "an object with 'sha256' and 'bytes'", e)


def first_line(e: BaseException, limit: int = 300) -> str:
    """An exception's first line for a one-line message (its type where it has no text)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]
