"""The runtime imports, and its CLI answers --help, with the heavy libraries blocked."""
import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent("""
    import sys, importlib.abc
    BLOCKED = {"torch", "onnx", "onnxruntime", "openvino", "tensorrt", "cv2", "nncf", "scipy", "matplotlib"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
""")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_import_without_torch():
    r = run("""
        import alage_edge
        from alage_edge import AgeEstimator, AgeResult, PreprocessSpec
        from alage_edge import preprocess, manifest, ages, metrics, estimator, backends, results, draw
        from alage_edge.backends import base, onnxruntime, openvino, tensorrt, pytorch, cuda, engine_key
        from alage_edge.data import synth, spec, adience, morph, fgnet, lap, folder
        assert "torch" not in sys.modules and "onnxruntime" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_cli_help_without_heavy_libraries():
    r = run("""
        from alage_edge.cli import main
        assert main(["--help"]) == 0
        for cmd in ("predict", "parity", "bench"):
            try:
                main([cmd, "--help"])
            except SystemExit as e:
                assert e.code == 0, cmd
        print("ok")
    """)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "commands:" in r.stdout and r.stdout.strip().endswith("ok")


def test_missing_backend_library_says_which_extra_to_install(tiny_bundle):
    r = run(f"""
        from alage_edge import AgeEstimator
        from alage_edge.backends import BackendError
        try:
            AgeEstimator.load({str(tiny_bundle)!r}, backend="onnxruntime")
        except BackendError as e:
            print(e)
    """)
    assert "alage-edge[onnxruntime]" in r.stdout, r.stderr
