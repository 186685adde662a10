"""Progress bars: tqdm when installed (and output is a terminal or forced), plain otherwise."""
from __future__ import annotations

import os
import sys
from typing import Iterable, Optional


def bar(iterable: Optional[Iterable] = None, desc: str = "", total: Optional[int] = None,
        leave: bool = True, disable: Optional[bool] = None, **kw):
    """A tqdm bar (``ALAGE_PROGRESS=0`` turns bars off, ``=1`` forces them)."""
    env = os.environ.get("ALAGE_PROGRESS")
    if disable is None:
        disable = env == "0"
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in every extra that runs long work
        return _Plain(iterable, desc, total, disable)
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=disable, dynamic_ncols=True,
                file=sys.stderr, mininterval=0.5, **kw)


class _Plain:
    def __init__(self, iterable, desc, total, disable):
        self.iterable, self.desc, self.total, self.disable, self.n = iterable, desc, total, disable, 0

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)
        self.close()

    def update(self, k=1):
        self.n += k

    def set_postfix(self, *a, **k):
        pass

    def set_postfix_str(self, *a, **k):
        pass

    def close(self):
        if not self.disable:
            print(f"{self.desc}: {self.n}/{self.total or self.n} done", file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
