"""The graph plan: the streams' order comes from the manifest's io table, the precision rules from one place."""
import pytest

from alage_edge.graphs import FLOAT_STREAMS, feeds_for, graph_for, split_streams, streams

IO = {"fused": {"inputs": {"image": []}, "outputs": {"fused_logits": []}},
      "attention": {"inputs": {"image": [], "g": []}, "outputs": {"boxes": [], "fused_logits": []}},
      "global": {"inputs": {"image": []}, "outputs": {"g": [], "global_logits": []}}}


def test_streams_run_after_the_streams_whose_outputs_they_read():
    assert split_streams(IO) == ["global", "attention"]  # whatever order the manifest lists them in
    assert streams(IO, "fused") == ["fused"]
    assert split_streams({"global": IO["global"]}) == ["global"]  # a global-only model
    with pytest.raises(ValueError, match="read inputs no stream writes: \\['g'\\]"):
        split_streams({"attention": IO["attention"]})
    with pytest.raises(ValueError, match="graph must be one of"):
        streams(IO, "both")


def test_a_stream_is_fed_the_image_or_an_earlier_streams_outputs():
    got = feeds_for(IO, "attention", "IMG", {"g": "G", "global_logits": "L"})
    assert got == {"image": "IMG", "g": "G"}
    assert feeds_for(IO, "attention", "IMG", {"g": "G", "image": "DEVICE COPY"})["image"] == "DEVICE COPY"


def test_a_precision_with_a_float_stream_runs_split():
    assert FLOAT_STREAMS["bf16"] == ("attention",)
    assert graph_for("bf16", "fused", ["split", "fused"]) == "split"
    assert graph_for("fp32", "fused", ["split", "fused"]) == "fused"
    assert graph_for("fp32", "fused", ["split"]) == "split"  # what the artifact has
    assert graph_for("fp32", "split", []) == "split"  # a checkpoint: the backend's own choice


def test_a_manifest_whose_streams_cannot_be_ordered_is_refused_naming_io(tiny_bundle, tmp_path):
    pytest.importorskip("onnxruntime")
    import json
    import shutil

    from alage_edge import AgeEstimator
    from alage_edge.manifest import BundleError

    shutil.copytree(tiny_bundle, tmp_path / "b")
    path = tmp_path / "b" / "manifest.json"
    man = json.loads(path.read_text())
    man["io"]["attention"]["inputs"]["hidden_state"] = [-1, 8]
    path.write_text(json.dumps(man))
    with pytest.raises(BundleError, match="field 'io': the manifest's streams \\['attention'\\] read inputs"):
        AgeEstimator.load(tmp_path / "b", backend="onnxruntime", graph="split")
