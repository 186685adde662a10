"""Triton Python-backend model: logits -> age, std, group, group probabilities (alage_edge.ages.decode).
Parameter: head (dex or groups)."""
import json

from alage_triton import array, tensor  # first: where alage_edge is, and numpy-2-safe tensors

# isort: split

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.head = cfg["parameters"]["head"]["string_value"]

    def execute(self, requests):
        from alage_edge.ages import decode

        answers = []
        for r in requests:
            d = decode(array(r, "logits"), self.head)
            out = [tensor("age", d["age"].astype(np.float32)[:, None]),
                   tensor("std", d["std"].astype(np.float32)[:, None]),
                   tensor("group", d["group"].astype(np.int32)[:, None]),
                   tensor("group_probs", d["group_probs"].astype(np.float32))]
            answers.append(pb_utils.InferenceResponse(out))
        return answers
