"""The latency suite shares the tests' trained, cached bundle."""
import os

os.environ.setdefault("ALAGE_PROGRESS", "0")

from tests.conftest import trained_bundle  # noqa: E402,F401  (fixture)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")
