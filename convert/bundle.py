"""Writing a bundle's manifest (export and convert): record files with their sha256 and
artifacts, save atomically, and read-modify-write under a lock."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator

from alage_edge.atomic import write_json
from alage_edge.manifest import FORMAT, MANIFEST, VERSION, Artifact, Manifest, sha256_file
from alage_edge.preprocess import PreprocessSpec


class BundleWriter(Manifest):
    @classmethod
    def create(cls, root, model: dict, preprocess: PreprocessSpec, io: dict, **extra) -> "BundleWriter":
        data = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "model": model, "preprocess": preprocess.to_dict(), "io": io, **extra,
                "files": {}, "artifacts": []}
        return cls(root, data)

    def record_file(self, rel: str, **meta) -> None:
        p = self.root / rel
        self.data.setdefault("files", {})[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size, **meta}

    def add_artifact(self, art: Artifact) -> None:
        """Record (or replace: same format, precision and variant) an artifact and hash its files."""
        for rel in art.files.values():
            self.record_file(rel, artifact=art.key)
        kept = [a for a in self.data.get("artifacts", []) if Artifact.from_dict(a).key != art.key]
        self.data["artifacts"] = kept + [art.to_dict()]

    def save(self) -> Path:
        return write_json(self.root / MANIFEST, self.data)


@contextlib.contextmanager
def updating(root) -> Iterator[BundleWriter]:
    """Read-modify-write the manifest under a lock (two conversions may run at once)."""
    root = Path(root)
    lock = root / ".manifest.lock"
    with open(lock, "a+") as f:
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no lock
            pass
        m = BundleWriter.load(root)
        yield m
        m.save()
