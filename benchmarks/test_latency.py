"""Latency suite (pytest-benchmark): backend x precision x batch (1 and 8).

    pytest benchmarks/ --benchmark-only                 (table at the end)
    pytest benchmarks/ --benchmark-only --benchmark-json bench.json

Not part of the unit tests: it measures, it asserts nothing about speed.
For a bundle of your own use `alage-edge bench BUNDLE`.
"""
import os

import pytest

from alage_edge.manifest import Manifest
from alage_edge.tools import compare
from alage_edge.tools.runs import RUNS

BUNDLE = os.environ.get("ALAGE_BENCH_BUNDLE")


@pytest.fixture(scope="module")
def bundle(request):
    if BUNDLE:
        return BUNDLE
    return request.getfixturevalue("trained_bundle")


_loaded = {}


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("run", RUNS, ids=lambda r: r.key)
def test_latency(benchmark, bundle, run, batch):
    man = Manifest.load(bundle)
    why = dict((r.key, w) for r, w in compare.runnable(man, [run.key]))[run.key]
    if why:
        pytest.skip(why)
    if run.key not in _loaded:
        _loaded[run.key] = compare.load(bundle, run, batch_size=8)
    est = _loaded[run.key]
    x = man.preprocess.random_input(batch)
    benchmark.group = f"batch {batch}"
    benchmark.extra_info.update(backend=est.describe(), precision=run.precision)
    benchmark.pedantic(est.infer, args=(x,), rounds=20, iterations=1, warmup_rounds=3)
