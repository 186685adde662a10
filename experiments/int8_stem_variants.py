#!/usr/bin/env python3
"""What moves the real photos when NNCF quantises the local CNN: one change at a time on a bundle.

    python experiments/int8_stem_variants.py runs/demo/bundle

Each variant builds NNCF INT8 (scope global+local, fused IR, 300 synth calibration faces) on a copy of the
bundle (the bundle itself is never written) and prints the age drift against OpenVINO fp32 on 300 synth
test faces and on the 41 real photos parity uses, and the MAE change. The variants override which
convolutions NNCF leaves float (``convert/openvino.py: ignored_scope``) or its parameters.
"""
import argparse
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import nncf

    import alage_edge.convert.openvino as cov
    from alage_edge import AgeEstimator
    from alage_edge.manifest import Manifest
    from alage_edge.tools import compare

    rule, quantize = cov.ignored_scope, cov._quantize_stream

    def keep(names, stems=False):  # the rule without (or with) the stems, plus the convolutions named
        def scope(model, stream, sc, floats=None):
            base = rule(model, stream, sc, floats if stems else None)
            extra = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"
                     and any(n in op.get_friendly_name() for n in names)]
            return nncf.IgnoredScope(names=list(base.names) + extra, patterns=list(base.patterns),
                                     types=list(base.types), validate=False)
        return scope

    def with_params(**kw):
        def q(model, stream, calib, scope=cov.DEFAULT_INT8_SCOPE["openvino"], floats=None):
            return nncf.quantize(model, calib.nncf_dataset("global" if stream == "fused" else stream),
                                 subset_size=len(calib), ignored_scope=cov.ignored_scope(model, stream, scope, floats),
                                 advanced_parameters=cov._advanced(), **kw)
        return q

    variants = {
        "every local CNN convolution in INT8": dict(scope=keep([])),
        "local CNN stem float": dict(scope=keep(["/attention_stream/local/conv1/"])),
        "local CNN stem and first block float": dict(scope=keep(["/attention_stream/local/conv1/",
                                                                 "/attention_stream/local/layer1/"])),
        "local CNN last block float": dict(scope=keep(["/attention_stream/local/layer4/"])),
        "global stem float": dict(scope=keep(["/global_stream/backbone/conv1/"])),
        "asymmetric activations (MIXED preset)": dict(scope=keep([]), q=with_params(preset=nncf.QuantizationPreset.MIXED)),
        "full bias correction instead of fast": dict(scope=keep([]), q=with_params(fast_bias_correction=False)),
        "both stems float (the rule now)": {},
    }
    src = Path(args.bundle)
    man = Manifest.load(src)
    sets = [compare.synth_set(man, "synth", 300, None), compare.photo_set(man)]
    with AgeEstimator.load(src, backend="openvino", precision="fp32", artifact="openvino") as ref_est:
        ref = [compare.outputs(ref_est, s.images)["age"] for s in sets]
    work = Path(tempfile.mkdtemp(prefix="int8-variants-"))
    try:
        for i, (name, v) in enumerate(variants.items()):
            d = work / str(i)
            shutil.copytree(src, d, ignore=shutil.ignore_patterns("parity-record.json"))
            shutil.rmtree(d / "openvino" / "int8", ignore_errors=True)
            cov.ignored_scope, cov._quantize_stream = v.get("scope", rule), v.get("q", quantize)
            try:
                cov.build(d, "int8", data="synth", calib_size=300, progress=False, int8_scope="global+local")
            finally:
                cov.ignored_scope, cov._quantize_stream = rule, quantize
            with AgeEstimator.load(d, backend="openvino", precision="int8", artifact="openvino", graph="fused") as e:
                out = [compare.outputs(e, s.images)["age"] for s in sets]
            dr = [np.abs(o - r) for o, r in zip(out, ref)]
            dm = np.abs(out[0] - sets[0].ages).mean() - np.abs(ref[0] - sets[0].ages).mean()
            print(f"| {name} | {dr[0].mean():.3f} / {dr[0].max():.2f} | {dr[1].mean():.3f} / {dr[1].max():.3f} | "
                  f"{dm:+.3f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
