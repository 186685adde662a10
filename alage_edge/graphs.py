"""The graph plan: which exported graphs run, in which order, and which keep fp32 at a precision.

A bundle holds the model as split streams (``global.onnx`` then ``attention.onnx``, handing over ``g``)
and as one ``fused`` graph (``alnet.onnx``). The plan reads the streams from the manifest's ``io`` table
(a stream runs once every input it names is the image or an output of a stream before it), so nothing
else needs to know what the model's streams are. The precision rule (which streams keep fp32, so run
split) lives here too, read by the backends.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

FUSED = "fused"  # the io entry of the one-graph model
GRAPHS = ("split", FUSED)
IMAGE = "image"

# Streams that keep fp32 at a precision, and why. With one of them, that precision runs the split graph.
FLOAT_STREAMS: Dict[str, Tuple[str, ...]] = {
    # bf16 moves a grid coordinate in steps of up to 0.44 px of a 224 px detail image, and a selector's score
    # in steps that can change which glimpse is read
    "bf16": ("attention",),
}


def split_streams(io: Dict[str, dict]) -> List[str]:
    """The split graph's streams in the order they run: each after the streams whose outputs it reads."""
    todo = [s for s in io if s != FUSED]
    have, order = {IMAGE}, []
    while todo:
        ready = [s for s in todo if set(io[s].get("inputs", {})) <= have]
        if not ready:
            raise ValueError(f"the manifest's streams {todo} read inputs no stream writes: "
                             f"{sorted(set().union(*(io[s].get('inputs', {}) for s in todo)) - have)}")
        for s in ready:
            order.append(s)
            have |= set(io[s].get("outputs", {}))
            todo.remove(s)
    return order


def streams(io: Dict[str, dict], graph: str) -> List[str]:
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")
    return [FUSED] if graph == FUSED else split_streams(io)


def graph_for(precision: str, preferred: str, available: Sequence[str]) -> str:
    """The graph a backend runs at ``precision``: split where a stream keeps fp32 there, else ``preferred``
    when the artifact has it, else what it has."""
    want = "split" if FLOAT_STREAMS.get(precision) else preferred
    if want in available or not available:
        return want
    return available[0]


def feeds_for(io: Dict[str, dict], stream: str, image, outputs: Dict[str, object]) -> Dict[str, object]:
    """A stream's inputs by name: the image, or what an earlier stream returned."""
    return {name: (outputs.get(IMAGE, image) if name == IMAGE else outputs[name]) for name in io[stream]["inputs"]}
