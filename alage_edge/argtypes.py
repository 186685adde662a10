"""argparse types shared by every command: each refuses a bad value with a message argparse prefixes with the
flag's name (``--iters: expected a positive integer, got '0'``), so no command runs on a value it cannot use."""
from __future__ import annotations

import argparse
import json
import math


def _number(text: str, kind, what: str, ok) -> float:
    try:
        v = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(v, float) and not math.isfinite(v) or not ok(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_int(text: str) -> int:
    return _number(text, int, "a positive integer", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def positive_float(text: str) -> float:
    return _number(text, float, "a number > 0", lambda v: v > 0)


def non_negative_float(text: str) -> float:
    return _number(text, float, "a number >= 0", lambda v: v >= 0)


def positive_ints(text: str) -> tuple:
    """A comma-separated list of positive integers, e.g. 1,8."""
    try:
        out = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,8, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,8, got {text!r}")
    return out


def json_object(text: str) -> dict:
    """A JSON object (--config), or a message naming the problem."""
    try:
        v = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}); e.g. '{{\"steps\": 4}}'") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(v).__name__}")
    return v


def port(text: str) -> int:
    return _number(text, int, "a TCP port from 1 to 65535", lambda v: 1 <= v <= 65535)
