"""A small real bundle written with onnx alone (no torch): what a Jetson venv, which has no torch, tests
TensorRT with. Same streams, names and shapes as an exported al_resnet18 bundle: global.onnx (image -> g,
global_logits: average pool, conv, ReLU, global pool, Gemm), attention.onnx (image, g -> boxes, local_logits,
fused_logits: three fixed exact crops as Slices, a shared conv, pooled, averaged, Gemms) and alnet.onnx (both).
Random but fixed weights (seed 0); ONNX Runtime fp32 is the reference where torch is absent."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from alage_edge.convert.bundle import BundleWriter
from alage_edge.manifest import Artifact
from alage_edge.preprocess import PreprocessSpec

S, C, K, T, CROP = 128, 16, 101, 3, 32
CROPS = [(8, 20), (8, 76), (60, 48)]  # (y, x) of each fixed box's top-left corner, input pixels


def _graphs():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = lambda name, a: numpy_helper.from_array(np.asarray(a, np.float32), name)  # noqa: E731
    w = {"gconv": rng.normal(0, 0.3, (C, 3, 3, 3)), "gfc": rng.normal(0, 0.3, (K, C)), "gb": np.zeros(K),
         "lconv": rng.normal(0, 0.3, (C, 3, 3, 3)), "lfc": rng.normal(0, 0.3, (K, C)), "lb": np.zeros(K),
         "ffc": rng.normal(0, 0.3, (K, 2 * C)), "fb": np.zeros(K)}
    boxes = np.array([[x / S, y / S, (x + CROP) / S, (y + CROP) / S] for y, x in CROPS], np.float32)

    def global_nodes():
        return [helper.make_node("AveragePool", ["image"], ["half"], kernel_shape=[2, 2], strides=[2, 2]),
                helper.make_node("Conv", ["half", "gconv"], ["gc"], strides=[2, 2], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", ["gc"], ["gr"]),
                helper.make_node("GlobalAveragePool", ["gr"], ["gp"]),
                helper.make_node("Flatten", ["gp"], ["g"]),
                helper.make_node("Gemm", ["g", "gfc", "gb"], ["global_logits"], transB=1)]

    def attention_nodes(g="g"):
        nodes, feats = [], []
        for i, (y, x) in enumerate(CROPS):
            nodes += [helper.make_node("Slice", ["image", f"st{i}", f"en{i}", "axes"], [f"crop{i}"]),
                      helper.make_node("Conv", [f"crop{i}", "lconv"], [f"lc{i}"], strides=[2, 2], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"lc{i}"], [f"lr{i}"]),
                      helper.make_node("GlobalAveragePool", [f"lr{i}"], [f"lp{i}"]),
                      helper.make_node("Flatten", [f"lp{i}"], [f"lf{i}"])]
            feats.append(f"lf{i}")
        nodes += [helper.make_node("Sum", feats, ["lsum"]),
                  helper.make_node("Mul", ["lsum", "third"], ["local"]),
                  helper.make_node("Gemm", ["local", "lfc", "lb"], ["local_logits"], transB=1),
                  helper.make_node("Concat", [g, "local"], ["gl"], axis=1),
                  helper.make_node("Gemm", ["gl", "ffc", "fb"], ["fused_logits"], transB=1),
                  helper.make_node("Shape", ["image"], ["ishape"], start=0, end=1),
                  helper.make_node("Concat", ["ishape", "tb4"], ["bshape"], axis=0),
                  helper.make_node("Expand", ["box_table", "bshape"], ["boxes"])]
        return nodes

    def att_inits():
        out = [init("lconv", w["lconv"]), init("lfc", w["lfc"]), init("lb", w["lb"]), init("ffc", w["ffc"]),
               init("fb", w["fb"]), init("third", np.full(1, 1 / len(CROPS))), init("box_table", boxes[None])]
        out += [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
                numpy_helper.from_array(np.array([T, 4], np.int64), "tb4")]
        for i, (y, x) in enumerate(CROPS):
            out += [numpy_helper.from_array(np.array([y, x], np.int64), f"st{i}"),
                    numpy_helper.from_array(np.array([y + CROP, x + CROP], np.int64), f"en{i}")]
        return out

    g_inits = [init("gconv", w["gconv"]), init("gfc", w["gfc"]), init("gb", w["gb"])]
    t = lambda name, *dims: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", *dims])  # noqa: E731
    image, g = t("image", 3, S, S), t("g", C)
    outs = {"g": t("g", C), "global_logits": t("global_logits", K), "boxes": t("boxes", T, 4),
            "local_logits": t("local_logits", K), "fused_logits": t("fused_logits", K)}
    model = lambda graph: helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])  # noqa: E731
    return {
        "global.onnx": model(helper.make_graph(global_nodes(), "global", [image],
                                               [outs["g"], outs["global_logits"]], g_inits)),
        "attention.onnx": model(helper.make_graph(attention_nodes(), "attention", [image, g],
                                                  [outs[k] for k in ("boxes", "local_logits", "fused_logits")],
                                                  att_inits())),
        "alnet.onnx": model(helper.make_graph(global_nodes() + attention_nodes(), "alnet", [image],
                                              [outs[k] for k in ("global_logits", "boxes", "local_logits",
                                                                 "fused_logits")], g_inits + att_inits())),
    }


def write_onnx_bundle(out) -> Path:
    """Write the bundle into the new folder ``out``; returns it."""
    import onnx

    out = Path(out)
    out.mkdir(parents=True)
    for name, model in _graphs().items():
        onnx.checker.check_model(model)
        onnx.save(model, str(out / name))
    image = {"image": [-1, 3, S, S]}
    io = {"global": {"file": "global.onnx", "inputs": image, "outputs": {"g": [-1, C], "global_logits": [-1, K]}},
          "attention": {"file": "attention.onnx", "inputs": {**image, "g": [-1, C]},
                        "outputs": {"boxes": [-1, T, 4], "local_logits": [-1, K], "fused_logits": [-1, K]}},
          "fused": {"file": "alnet.onnx", "inputs": image,
                    "outputs": {"global_logits": [-1, K], "boxes": [-1, T, 4], "local_logits": [-1, K],
                                "fused_logits": [-1, K]}}}
    model = {"arch": "onnx_fixture", "attention": True, "head": "dex", "global_size": S // 2, "detail_scale": 2,
             "steps": T, "crop_size": CROP, "exact_crops": True}
    m = BundleWriter.create(out, model, PreprocessSpec(size=S), io, opset=17,
                            training_data={"data": "none: random fixed weights (test fixture)", "real_faces": None},
                            exporter="onnx.helper (tests/onnx_bundle.py)")
    m.add_artifact(Artifact("onnx", "fp32", {s: io[s]["file"] for s in io}, {}))
    m.save()
    return out
