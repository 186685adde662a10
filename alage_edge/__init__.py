"""alage-edge: fine-grained face age estimation with attention-LSTM networks, on the edge.

Imports with numpy alone; every engine library (torch, onnxruntime, openvino,
tensorrt) is imported only when its backend is used.

    from alage_edge import AgeEstimator
    est = AgeEstimator.load("bundle/")
    print(est.predict("face.jpg")[0].age)
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["AgeEstimator", "AgeResult", "PreprocessSpec", "__version__"]


def __getattr__(name):  # lazy: `import alage_edge` stays light
    if name == "AgeEstimator":
        from .estimator import AgeEstimator

        return AgeEstimator
    if name == "AgeResult":
        from .results import AgeResult

        return AgeResult
    if name == "PreprocessSpec":
        from .preprocess import PreprocessSpec

        return PreprocessSpec
    raise AttributeError(f"module 'alage_edge' has no attribute {name!r}")
