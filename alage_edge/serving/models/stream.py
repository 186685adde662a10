"""Triton Python-backend model: one stream (global or attention) of a bundle, run by alage-edge's own
backend (ONNX Runtime, OpenVINO, ...), as ``alage-edge serve`` chose it. Parameters in config.pbtxt:
bundle, stream, backend, precision."""
import json

from alage_triton import array, tensor  # first: where alage_edge is, and numpy-2-safe tensors

# isort: split

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        from alage_edge.autoprecision import resolve
        from alage_edge.backends import backend_class
        from alage_edge.manifest import Manifest

        cfg = json.loads(args["model_config"])
        p = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        self.stream = p["stream"]
        manifest = Manifest.load(p["bundle"])
        sel = resolve(manifest, p["backend"], p["precision"] or None, None, None)
        self.runner = backend_class(sel.backend)(manifest, sel.artifact, precision=sel.precision, graph="split",
                                                 why=sel.why, threads=int(p.get("threads") or 0),
                                                 **sel.options).load()
        self.inputs = [i["name"] for i in cfg["input"]]
        self.outputs = [o["name"] for o in cfg["output"]]

    def execute(self, requests):
        # Triton's dynamic batcher hands several requests at once: each is checked alone (a bad one gets its
        # own error, HTTP 400 / gRPC INVALID_ARGUMENT), the good ones run as one batch, answers split.
        from alage_edge.backends import InputError

        feeds = [{n: array(r, n) for n in self.inputs} for r in requests]
        errors = {}
        for i, f in enumerate(feeds):
            try:
                if "image" in f:
                    self.runner.check(f["image"])
            except InputError as e:
                errors[i] = pb_utils.TritonError(str(e), pb_utils.TritonError.INVALID_ARG)
        good = [f for i, f in enumerate(feeds) if i not in errors]
        out = self.runner.infer_stream(self.stream, {n: np.concatenate([f[n] for f in good]) for n in self.inputs},
                                       check=False) if good else {}
        answers, start = [], 0
        for i, f in enumerate(feeds):
            if i in errors:
                answers.append(pb_utils.InferenceResponse(output_tensors=[], error=errors[i]))
                continue
            n = len(f[self.inputs[0]])
            answers.append(pb_utils.InferenceResponse([tensor(k, out[k][start:start + n]) for k in self.outputs]))
            start += n
        return answers

    def finalize(self):
        self.runner.close()
