"""Triton Python-backend model: encoded pictures in. Decodes each picture, finds and aligns faces when
asked (``detector``: one the server offers, parameter ``detectors``; empty: the picture is an aligned face), preprocesses with the
bundle's one preprocessing, and asks the ``alage`` ensemble (so dynamic batching merges the faces of
concurrent requests). The picture's file bytes and the detector's name come as UINT8 vectors. Answers
one row per face; face boxes and attention boxes in picture pixels."""
import json

from alage_triton import array, tensor  # first: where alage_edge is, and numpy-2-safe tensors

# isort: split

import numpy as np
import triton_python_backend_utils as pb_utils

OUTPUTS = ("age", "std", "group", "group_probs")


class TritonPythonModel:
    def initialize(self, args):
        from alage_edge.manifest import Manifest

        cfg = json.loads(args["model_config"])
        p = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        manifest = Manifest.load(p["bundle"])
        self.spec, self.target = manifest.preprocess, p["ensemble"]
        self.steps, self.max_batch = int(p["steps"]), int(p["max_batch"])
        self.detectors = [d for d in p.get("detectors", "hog").split(",") if d]
        self.max_pixels = int(p.get("max_pixels") or 0) or None

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        from alage_edge.faces import find_faces
        from alage_edge.images import ImageError, load_image

        raw = array(request, "image").reshape(-1)
        det = array(request, "detector")
        detector = det.tobytes().decode(errors="replace") if det is not None else ""
        if detector and detector not in self.detectors:
            shown = detector if len(detector) <= 40 else f"{detector[:40]}... ({len(detector)} bytes)"
            return _error(f"detector {shown!r} is not offered by this server (it offers "
                          f"{', '.join(self.detectors) or 'none'}; alage-edge serve --detectors)")
        try:
            kw = {"max_pixels": self.max_pixels} if self.max_pixels else {}
            rgb = load_image(raw.tobytes(), "image", **kw)
            found = find_faces(rgb, self.spec, detector) if detector else [(None, self.spec.square(rgb))]
        except (ImageError, ValueError) as e:
            return _error(str(e))
        except ImportError as e:
            return _error(str(e), pb_utils.TritonError.UNAVAILABLE)
        n, t = len(found), self.steps
        # (n, 1), not (n,): the 2.51 stub takes no 1-D tensor over DLPack
        out = {"age": np.zeros((n, 1), np.float32), "std": np.zeros((n, 1), np.float32),
               "group": np.zeros((n, 1), np.int32), "group_probs": np.zeros((n, 8), np.float32),
               "boxes": np.zeros((n, t, 4), np.float32), "face_boxes": np.zeros((n, 4), np.float32),
               "face_scores": np.zeros((n, 1), np.float32)}
        names = list(OUTPUTS) + (["boxes"] if t else [])
        for s in range(0, n, self.max_batch):  # a crowd larger than the ensemble's batch: in chunks
            part = found[s:s + self.max_batch]
            x = np.stack([self.spec.apply(rgb, g) for _, g in part])
            res = pb_utils.InferenceRequest(model_name=self.target, requested_output_names=names,
                                            inputs=[tensor("image", x)]).exec()
            if res.has_error():
                return _error(res.error().message())
            got = {k: np.array(np.from_dlpack(pb_utils.get_output_tensor_by_name(res, k)), copy=True) for k in names}
            for j, (face, g) in enumerate(part):
                i = s + j
                for k in OUTPUTS:
                    out[k][i] = got[k][j].reshape(out[k][i].shape)
                if t:
                    out["boxes"][i] = g.to_pixels(got["boxes"][j])
                out["face_boxes"][i] = face.box if face is not None else g.box()
                out["face_scores"][i] = face.score if face is not None else 0.0
        return pb_utils.InferenceResponse([tensor(k, v) for k, v in out.items()])


def _error(msg, code=None):
    """A client's error: HTTP 400 / gRPC INVALID_ARGUMENT unless another code is given."""
    code = pb_utils.TritonError.INVALID_ARG if code is None else code
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(msg, code))
