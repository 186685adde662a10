"""What the OpenVINO backend changes in a model before compiling it (imports OpenVINO only when called)."""
from __future__ import annotations

from typing import List

STAY_F32 = "DisablePrecisionConversion"  # the IR's mark on the selector (convert/openvino.py: keep_attention_float)


def cast_float_convolutions(model, core, device: str) -> List[str]:
    """INT8 + bf16: the convolutions NNCF left float (weights a plain f32 constant: the stems that read
    pixels) read and compute in bf16 through explicit Converts, and give f32 back; the rest stays as
    quantised or f32. The bf16 *hint* also ran the selector's FullyConnected layers in bf16 (OpenVINO drops
    the f32 mark when it makes a MatMul one), which changed glimpses. Returns the names cast: none on a
    device without bf16 (the model then runs as INT8 + f32)."""
    import openvino as ov
    import openvino.opset13 as ops

    done = []
    if "BF16" not in core.get_property(device, "OPTIMIZATION_CAPABILITIES"):
        return done
    for op in model.get_ops():
        w = op.input_value(1).get_node() if op.get_type_name() == "Convolution" else None
        if w is None or w.get_type_name() != "Constant" or w.get_element_type() != ov.Type.f32:
            continue
        if any(k.startswith(STAY_F32) for k in op.get_rt_info().keys()):
            continue
        for port in (0, 1):
            op.input(port).replace_source_output(ops.convert(op.input_value(port), ov.Type.bf16).output(0))
        targets = list(op.output(0).get_target_inputs())
        back = ops.convert(op.output(0), ov.Type.f32)
        for t in targets:
            t.replace_source_output(back.output(0))
        done.append(op.get_friendly_name())
    model.validate_nodes_and_infer_types()
    return done
