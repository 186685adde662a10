"""A Triton model repository from a bundle.

    alage_global/     the global stream    (platform: python, onnxruntime, openvino or tensorrt)
    alage_attention/  the attention stream (same platform; absent for a plain network)
    alage_decode/     logits -> age, std, group, group_probs (Python backend, numpy only)
    alage/            ensemble: image -> global -> (g) -> attention -> decode; dynamic batching on each model
    alage_pictures/   encoded pictures -> faces -> ``alage`` (Python backend, BLS)
    README.md

``python`` runs each stream with alage-edge's own backend inside Triton's Python backend (what
``alage-edge serve`` starts on the bundled tritonserver); the others copy the stream's ONNX / IR / plan
for Triton's own backends.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..ages import HEAD_CLASSES
from ..images import MAX_PIXELS
from ..manifest import Manifest

PLATFORMS = ("python", "onnxruntime", "openvino", "tensorrt")
MODELS_DIR = Path(__file__).parent / "models"
ENSEMBLE, PICTURES = "alage", "alage_pictures"
MAX_BATCH = 256  # a merged batch larger than this is a typo or an attack (memory), not a setting
DEFAULT_MAX_PIXELS = 50_000_000  # a picture request's cap: a 12000x8000 photo is refused, a 50 MP camera's is not


@dataclass
class RepoOptions:
    platform: str = "python"
    backend: str = "auto"  # python platform: alage-edge's backend for the streams
    precision: Optional[str] = None
    max_batch: int = 16
    max_delay_us: int = 2000
    instances: int = 1
    threads: int = 0  # python platform: intra-op threads per stream instance (0: the backend's default)
    detectors: Tuple[str, ...] = ("hog",)  # face detectors alage_pictures offers (cnn costs ~20 s a photo on a CPU)
    max_pixels: int = DEFAULT_MAX_PIXELS  # largest picture alage_pictures decodes

    def __post_init__(self):
        from ..faces import DETECTORS

        if self.platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {', '.join(PLATFORMS)}, got {self.platform!r}")
        if self.precision == "auto" and self.platform != "python":
            raise ValueError("precision auto is chosen by alage-edge's runtime on the serving machine: it applies "
                             "to the python platform (alage-edge serve), not to Triton's own backends")
        if not isinstance(self.max_batch, int) or not 1 <= self.max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be an integer from 1 to {MAX_BATCH}, got {self.max_batch!r}")
        bad = [d for d in self.detectors if d not in DETECTORS]
        if bad or not isinstance(self.detectors, (tuple, list)):
            raise ValueError(f"detectors must be a list of {', '.join(DETECTORS)}, got {self.detectors!r}")
        if not isinstance(self.max_pixels, int) or not 64 <= self.max_pixels <= MAX_PIXELS:
            raise ValueError(f"max_pixels must be an integer from 64 to {MAX_PIXELS}, got {self.max_pixels!r}")
        for k in ("max_batch", "instances"):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ValueError(f"{k} must be a positive integer, got {getattr(self, k)!r}")
        if not isinstance(self.max_delay_us, int) or self.max_delay_us < 0:
            raise ValueError(f"max_delay_us must be a non-negative integer, got {self.max_delay_us!r}")


def _dims(shape: List[int]) -> str:
    return "[ " + ", ".join(str(d) for d in shape[1:]) + " ]"  # batch dimension left to max_batch_size


def _tensors(kind: str, shapes: Dict[str, List[int]], dtype: str = "TYPE_FP32") -> str:
    return "\n".join(f'{kind} {{ name: "{n}" data_type: {dtype} dims: {_dims(s)} }}' for n, s in shapes.items())


def _params(**kv) -> str:
    return "\n".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in kv.items())


def _batching(o: RepoOptions, first: bool = True) -> str:
    """The global stream (the ensemble's first step) waits up to max_delay_us to merge requests; the later
    steps get its merged batches and only merge what is already queued (no added delay)."""
    sizes = sorted({b for b in (1, 2, 4, 8, 16, 32, 64) if b <= o.max_batch} | {o.max_batch})
    return (f"dynamic_batching {{ preferred_batch_size: [ {', '.join(map(str, sizes[-2:]))} ] "
            f"max_queue_delay_microseconds: {o.max_delay_us if first else 0} }}")


def _instances(o: RepoOptions, kind: str) -> str:
    return f"instance_group [ {{ count: {o.instances} kind: {kind} }} ]"


STREAM_FILES = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}


def stream_config(manifest: Manifest, stream: str, o: RepoOptions, bundle: Path) -> str:
    io = manifest.io[stream]
    head = [f'name: "alage_{stream}"', f"max_batch_size: {o.max_batch}",
            _tensors("input", io["inputs"]), _tensors("output", io["outputs"]), _batching(o, stream == "global")]
    if o.platform == "python":
        head[1:1] = ['backend: "python"']
        head += [_instances(o, "KIND_CPU"),
                 _params(bundle=bundle, stream=stream, backend=o.backend, precision=o.precision or "",
                         threads=o.threads)]
    elif o.platform == "openvino":
        head[1:1] = ['backend: "openvino"']
        head += [_instances(o, "KIND_CPU")]
    else:
        platform, _ = STREAM_FILES[o.platform]
        head[1:1] = [f'platform: "{platform}"']
        head += [_instances(o, "KIND_GPU" if o.platform == "tensorrt" else "KIND_CPU")]
    return "\n".join(head) + "\n"


def decode_config(manifest: Manifest, o: RepoOptions) -> str:
    c = HEAD_CLASSES[manifest.head]
    return "\n".join([
        'name: "alage_decode"', 'backend: "python"', f"max_batch_size: {o.max_batch}",
        f'input {{ name: "logits" data_type: TYPE_FP32 dims: [ {c} ] }}', _decoded_outputs(),
        _batching(o, first=False), _instances(o, "KIND_CPU"), _params(head=manifest.head)]) + "\n"


def _decoded_outputs() -> str:
    return "\n".join([
        'output { name: "age" data_type: TYPE_FP32 dims: [ 1 ] }',
        'output { name: "std" data_type: TYPE_FP32 dims: [ 1 ] }',
        'output { name: "group" data_type: TYPE_INT32 dims: [ 1 ] }',
        'output { name: "group_probs" data_type: TYPE_FP32 dims: [ 8 ] }'])


def ensemble_config(manifest: Manifest, o: RepoOptions) -> str:
    size = manifest.preprocess.size
    att = manifest.attention
    g_out = manifest.io["global"]["outputs"]
    steps = ['step { model_name: "alage_global" model_version: -1 input_map { key: "image" value: "image" } '
             + ('output_map { key: "g" value: "g" } }' if att else
                'output_map { key: "global_logits" value: "logits" } }')]
    outputs = [_decoded_outputs()]
    if att:
        boxes = manifest.io["attention"]["outputs"]["boxes"]
        steps.append('step { model_name: "alage_attention" model_version: -1 input_map { key: "image" value: "image" } '
                     'input_map { key: "g" value: "g" } output_map { key: "fused_logits" value: "logits" } '
                     'output_map { key: "boxes" value: "boxes" } }')
        outputs.append(f'output {{ name: "boxes" data_type: TYPE_FP32 dims: {_dims(boxes)} }}')
    assert att or "global_logits" in g_out
    steps.append('step { model_name: "alage_decode" model_version: -1 input_map { key: "logits" value: "logits" } '
                 + " ".join(f'output_map {{ key: "{k}" value: "{k}" }}' for k in ("age", "std", "group", "group_probs"))
                 + " }")
    return "\n".join([f'name: "{ENSEMBLE}"', 'platform: "ensemble"', f"max_batch_size: {o.max_batch}",
                      f'input {{ name: "image" data_type: TYPE_FP32 dims: [ 3, {size}, {size} ] }}', *outputs,
                      "ensemble_scheduling {", *("  " + s for s in steps), "}"]) + "\n"


def pictures_config(manifest: Manifest, o: RepoOptions, bundle: Path) -> str:
    t = manifest.model.get("steps", 0) if manifest.attention else 0
    return "\n".join([
        f'name: "{PICTURES}"', 'backend: "python"', "max_batch_size: 0",
        # UINT8, not TYPE_STRING: the Python stub of Triton 2.51 dies on a TYPE_STRING request under numpy 2
        'input { name: "image" data_type: TYPE_UINT8 dims: [ -1 ] }',
        'input { name: "detector" data_type: TYPE_UINT8 dims: [ -1 ] optional: true }',
        'output { name: "age" data_type: TYPE_FP32 dims: [ -1, 1 ] }',
        'output { name: "std" data_type: TYPE_FP32 dims: [ -1, 1 ] }',
        'output { name: "group" data_type: TYPE_INT32 dims: [ -1, 1 ] }',
        'output { name: "group_probs" data_type: TYPE_FP32 dims: [ -1, 8 ] }',
        f'output {{ name: "boxes" data_type: TYPE_FP32 dims: [ -1, {t}, 4 ] }}',
        'output { name: "face_boxes" data_type: TYPE_FP32 dims: [ -1, 4 ] }',
        'output { name: "face_scores" data_type: TYPE_FP32 dims: [ -1, 1 ] }',
        _instances(RepoOptions(instances=max(2, o.instances)), "KIND_CPU"),
        _params(bundle=bundle, ensemble=ENSEMBLE, steps=t, max_batch=o.max_batch, detectors=",".join(o.detectors),
                max_pixels=o.max_pixels)]) + "\n"


def plan_profile(info: dict, stream: str) -> Tuple[int, int, int]:
    """(min, opt, max) batch of a stream's TensorRT plan, from its artifact's record (bundles written before
    ``profiles`` was recorded: a DLA global stream is static at the opt batch)."""
    if stream in info.get("profiles", {}):
        return tuple(info["profiles"][stream])
    b = info.get("batch") or [1, 8, 16]
    return (b[1],) * 3 if info.get("dla_core") is not None and stream == "global" else tuple(b)


def tensorrt_stream(manifest: Manifest, stream: str, o: RepoOptions):
    """The TensorRT artifact holding a stream's plan for Triton's TensorRT backend, refused with a message
    when Triton could not run it: no plan yet, a DLA plan (static batch: Triton's backend sends batches below
    the profile's minimum, which the engine refuses), or a profile whose minimum is above 1."""
    want = o.precision or "fp16"
    found = [a for a in manifest.artifacts() if a.format == "tensorrt" and a.precision == want and stream in a.files]
    if not found:
        have = sorted({f"{a.format}-{a.precision}" for a in manifest.artifacts()})
        raise ValueError(f"{manifest.root}: no TensorRT {want} plan for the {stream} stream (has {have}). TensorRT "
                         f"plans are built on the device that runs them: there, run alage-edge convert "
                         f"{manifest.root} --to tensorrt --precision {want}, then write this repository there")
    art = found[-1]
    lo, _, hi = plan_profile(art.info, stream)
    if art.info.get("dla_core") is not None and stream == "global":
        raise ValueError(f"{manifest.root}: the {stream} stream's TensorRT plan is built for DLA core "
                         f"{art.info['dla_core']} with a static batch of {hi}; Triton's TensorRT backend sends "
                         f"smaller batches, which the plan refuses. For Triton, build GPU plans (convert --to "
                         f"tensorrt without --dla-core); alage-edge's own runtime pads batches for DLA plans")
    if lo != 1:
        raise ValueError(f"{manifest.root}: the {stream} stream's TensorRT plan has a batch profile from {lo} to "
                         f"{hi}; Triton needs plans that take batch 1 (convert --to tensorrt --batch 1,OPT,MAX)")
    return art, hi


def stream_file(manifest: Manifest, stream: str, o: RepoOptions) -> Dict[str, Path]:
    """The files a Triton backend loads for a stream (version folder name -> bundle file)."""
    if o.platform == "onnxruntime":
        return {"model.onnx": manifest.path(manifest.io[stream]["file"])}
    if o.platform == "tensorrt":
        art, _ = tensorrt_stream(manifest, stream, o)
        return {"model.plan": manifest.path(art.files[stream])}
    arts = manifest.artifacts()
    want = o.precision or "int8"
    found = [a for a in arts if a.format == "openvino" and a.precision == want and stream in a.files]
    if not found:
        have = sorted({f"{a.format}-{a.precision}" for a in arts})
        raise ValueError(f"{manifest.root}: no openvino {want} artifact for the {stream} stream (has {have}); "
                         f"run alage-edge convert {manifest.root} --to openvino first")
    xml = manifest.path(found[0].files[stream])
    return {"model.xml": xml, "model.bin": xml.with_suffix(".bin")}


def write_repository(bundle, out, options: Optional[RepoOptions] = None) -> Path:
    """Write the repository for ``bundle`` into the new folder ``out`` (refuses an existing one)."""
    from ..atomic import staged_dir

    o = options or RepoOptions()
    manifest = Manifest.load(bundle)
    root = Path(manifest.root).resolve()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; a model repository is written into a new folder")
    streams = ["global", "attention"] if manifest.attention else ["global"]
    if o.platform == "tensorrt":  # Triton refuses a max_batch_size above a plan's profile (ensemble included)
        o = replace(o, max_batch=min([o.max_batch] + [tensorrt_stream(manifest, s, o)[1] for s in streams]))
    with staged_dir(out) as tmp:
        for stream in streams:
            d = tmp / f"alage_{stream}"
            (d / "1").mkdir(parents=True)
            (d / "config.pbtxt").write_text(stream_config(manifest, stream, o, root))
            if o.platform == "python":
                _copy_model(MODELS_DIR / "stream.py", d / "1")
                continue
            for name, src in stream_file(manifest, stream, o).items():
                shutil.copy(src, d / "1" / name)
        for name, text, model in [("alage_decode", decode_config(manifest, o), "decode.py"),
                                  (PICTURES, pictures_config(manifest, o, root), "pictures.py")]:
            (tmp / name / "1").mkdir(parents=True)
            (tmp / name / "config.pbtxt").write_text(text)
            _copy_model(MODELS_DIR / model, tmp / name / "1")
        (tmp / ENSEMBLE / "1").mkdir(parents=True)
        (tmp / ENSEMBLE / "config.pbtxt").write_text(ensemble_config(manifest, o))
        (tmp / "README.md").write_text(readme(manifest, o, root))
    return out


def check_repository(repo) -> List[str]:
    """Parse every config.pbtxt with Triton's own model-config protobuf (from tritonclient) and compare
    the tensor names and shapes of each ONNX file with its config; raise ValueError on a mismatch.
    Returns one line per model checked."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    lines = []
    for cfg in sorted(Path(repo).glob("*/config.pbtxt")):
        try:
            m = text_format.Parse(cfg.read_text(), model_config_pb2.ModelConfig())
        except text_format.ParseError as e:
            raise ValueError(f"{cfg}: not a valid Triton model config ({e})") from None
        if m.name != cfg.parent.name:
            raise ValueError(f"{cfg}: name {m.name!r} is not its folder's {cfg.parent.name!r}")
        for graph, read in (("model.onnx", _onnx_io), ("model.xml", _openvino_io)):
            path = cfg.parent / "1" / graph
            io = read(path) if path.is_file() else None
            for kind, want in (("input", m.input), ("output", m.output)):
                have = (io or {}).get(kind)
                for t in want if have is not None else ():
                    if have.get(t.name) != list(t.dims):
                        raise ValueError(f"{cfg}: {kind} {t.name} {list(t.dims)} does not match {graph} ({have})")
        lines.append(f"{m.name} ({m.platform or m.backend})")
    return lines


def _onnx_io(path: Path) -> Dict[str, Dict[str, List[int]]]:
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    dims = lambda vi: [d.dim_value or -1 for d in vi.type.tensor_type.shape.dim][1:]  # noqa: E731
    return {"input": {v.name: dims(v) for v in g.input}, "output": {v.name: dims(v) for v in g.output}}


def _openvino_io(path: Path) -> Optional[Dict[str, Dict[str, List[int]]]]:
    """Names and shapes (batch left out) of an IR, or None where OpenVINO is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    model = ov.Core().read_model(str(path))
    dims = lambda p: [d.get_length() if d.is_static else -1 for d in p.get_partial_shape()][1:]  # noqa: E731
    return {"input": {p.get_any_name(): dims(p) for p in model.inputs},
            "output": {p.get_any_name(): dims(p) for p in model.outputs}}


def _copy_model(src: Path, version_dir: Path) -> None:
    shutil.copy(src, version_dir / "model.py")
    shutil.copy(MODELS_DIR / "alage_triton.py", version_dir / "alage_triton.py")


def readme(manifest: Manifest, o: RepoOptions, bundle: Path) -> str:
    ran = ("This is the repository `alage-edge serve` runs on the tritonserver of nvidia-pytriton; the tests "
           "load it and compare its answers with alage-edge's in-process results."
           if o.platform == "python" else
           f"Written for Triton's {o.platform} backend. It was checked structurally here (every config.pbtxt "
           "parses with Triton's model_config protobuf; tensor names and shapes match the bundle's graphs) "
           "but NOT executed: the tritonserver this project tests with carries the Python backend only.")
    build = "" if o.platform != "tensorrt" else (
        f"\nThe TensorRT plans were copied from the bundle; `max_batch_size` is {o.max_batch}, the largest batch "
        "every plan's profile takes. DLA plans are refused for Triton (static batch); build GPU plans for it.\n")
    return f"""# Triton model repository: {manifest.model.get('arch')} ({o.platform})

Written by `alage-edge convert {bundle} --to triton --platform {o.platform}`. {ran}
{build}
| model | what | batching |
|---|---|---|
| `alage_global` | global stream ({o.platform}) | dynamic, max {o.max_batch}, {o.max_delay_us} us |
| `alage_attention` | attention stream ({o.platform}) | dynamic, max {o.max_batch} |
| `alage_decode` | logits -> age, std, group, group_probs (Python backend) | dynamic |
| `{ENSEMBLE}` | ensemble: preprocessed `image` FP32 [3, {manifest.preprocess.size}, {manifest.preprocess.size}] in | - |
| `{PICTURES}` | an encoded picture's bytes as UINT8 [-1] (+ optional `detector`: b"hog", b"cnn" or b"haar" as UINT8), one row per face | - |

The Python models import `alage_edge` (`pip install 'alage-edge[faces]'` in the server's Python) and read
the bundle at `{bundle}` (parameter `bundle` in their config.pbtxt: edit it if the bundle moves).
On a Jetson, build GPU plans on the device (`alage-edge convert BUNDLE --to tensorrt --precision fp16`),
then write this repository there with `--platform tensorrt`.

    tritonserver --model-repository $PWD
    curl localhost:8000/v2/models/{ENSEMBLE}/ready
"""
