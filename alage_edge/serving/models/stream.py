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
        from alage_edge.backends import backend_class, select
        from alage_edge.manifest import Manifest

        cfg = json.loads(args["model_config"])
        p = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        self.stream = p["stream"]
        manifest = Manifest.load(p["bundle"])
        sel = select(manifest, p["backend"], p["precision"] or None, None, None)
        self.runner = backend_class(sel.backend)(manifest, sel.artifact, precision=sel.precision, graph="split",
                                                 why=sel.why, threads=int(p.get("threads") or 0)).load()
        self.inputs = [i["name"] for i in cfg["input"]]
        self.outputs = [o["name"] for o in cfg["output"]]

    def execute(self, requests):
        # Triton's dynamic batcher hands several requests at once: run them as one batch, split the answers.
        feeds = {n: [array(r, n) for r in requests] for n in self.inputs}
        sizes = [len(x) for x in feeds[self.inputs[0]]]
        out = self.runner.infer_stream(self.stream, {n: np.concatenate(v) for n, v in feeds.items()})
        answers, start = [], 0
        for n in sizes:
            answers.append(pb_utils.InferenceResponse([tensor(k, out[k][start:start + n])
                                                       for k in self.outputs]))
            start += n
        return answers

    def finalize(self):
        self.runner.close()
