"""The real Triton Inference Server, started on a model repository and stopped cleanly.

The ``tritonserver`` binary (2.51, Python backend only) comes from nvidia-pytriton's wheel, installed
without its dependencies (``pip install --no-deps nvidia-pytriton``: pytriton's own Python API pins
numpy<2, which this project does not use). Pitfalls handled here: the Python backend's stub must load
this interpreter's libpython (its LIBDIR goes first on LD_LIBRARY_PATH) and see this interpreter's
packages (PYTHONPATH); ``/v2/health/ready`` answers before the models are loaded (each model's own
ready endpoint is awaited); it listens on loopback unless asked; everything it writes lives in one temp
workspace, and a watchdog process removes that and stops the server when its parent stops, exits or dies.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterable, List, Optional


class ServerError(RuntimeError):
    """tritonserver is missing, did not start, or a model did not load; the message says which and why."""


def triton_home() -> Path:
    """The folder holding bin/tritonserver and backends/ (nvidia-pytriton's wheel)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("serving needs the tritonserver binary from nvidia-pytriton: "
                          "pip install --no-deps nvidia-pytriton==0.7.0 (and pip install 'alage-edge[serve]')")
    home = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
    if not (home / "bin" / "tritonserver").is_file():
        raise ServerError(f"{home}/bin/tritonserver is missing: this nvidia-pytriton wheel carries no server "
                          f"(wheels are manylinux x86_64/aarch64)")
    return home


def why_not_runnable() -> Optional[str]:
    """None when tritonserver can run here, else why not (for test skips)."""
    try:
        home = triton_home()
    except ServerError as e:
        return str(e)
    stub = home / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}"
    if not stub.is_dir():
        return f"no Python backend stub for Python {sys.version_info[0]}.{sys.version_info[1]} in {home}"
    r = subprocess.run([str(home / "bin" / "tritonserver"), "--help"], capture_output=True, env=_env(home))
    if r.returncode not in (0, 1) or b"model-repository" not in r.stdout + r.stderr:
        return f"tritonserver does not run here: {(r.stderr or r.stdout).decode(errors='replace')[-300:]}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path) -> dict:
    env = dict(os.environ)
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(home.parent.parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    # the stub embeds Python ignoring PYTHONPATH: models/alage_path.py puts this interpreter's path first
    here = str(Path(__file__).resolve().parents[2])
    env["ALAGE_PYTHONPATH"] = os.pathsep.join([here] + [p for p in sys.path if p and os.path.isdir(p) and p != here])
    return env


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _url_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class TritonServer:
    """``with TritonServer(repo) as s: ...`` starts tritonserver on free (or given) ports of ``host`` (loopback
    unless asked), waits until every model in ``models`` is ready, and on exit stops it.

    tritonserver runs under a watchdog process (``serving/watchdog.py``) that stops it and removes what it
    made (its workspace, its shared-memory regions, its python_env folder) when this process stops it, exits
    or is killed, SIGKILL included: no server outlives its parent, and no one else's files are touched."""

    def __init__(self, repository, models: Iterable[str] = ("alage", "alage_pictures"), http_port: int = 0,
                 grpc_port: int = 0, metrics_port: int = 0, start_timeout: float = 180.0,
                 log_verbose: int = 0, host: str = "127.0.0.1", remove_on_stop: Iterable = ()):
        self.repository = Path(repository).resolve()
        if not (self.repository / "README.md").is_file() and not any(self.repository.glob("*/config.pbtxt")):
            raise ServerError(f"{self.repository}: not a Triton model repository (no */config.pbtxt)")
        self.models = list(models)
        self.host = host
        self.remove_on_stop = [str(Path(p).resolve()) for p in remove_on_stop]  # the watchdog removes these too
        self.http_port, self.grpc_port, self.metrics_port = (p or free_port() for p in
                                                             (http_port, grpc_port, metrics_port))
        self.start_timeout, self.log_verbose = start_timeout, log_verbose
        self.proc: Optional[subprocess.Popen] = None  # the watchdog
        self.server_pid: Optional[int] = None
        self.returncode: Optional[int] = None  # tritonserver's, once it has ended
        self.workspace: Optional[Path] = None
        self.shm_prefix = ""
        self.startup_s = self.shutdown_s = float("nan")

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{_url_host(self.host)}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.metrics_port}/metrics"

    @property
    def log(self) -> Path:
        return self.workspace / "tritonserver.log"

    def command(self, home: Path) -> List[str]:
        backends = self.workspace / "backends"
        return [str(home / "bin" / "tritonserver"), f"--model-repository={self.repository}",
                f"--backend-directory={backends}", f"--cache-directory={home / 'caches'}",
                f"--http-address={self.host}", f"--grpc-address={self.host}", f"--metrics-address={self.host}",
                f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
                f"--metrics-port={self.metrics_port}", "--allow-metrics=true", "--allow-gpu-metrics=false",
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                f"--log-verbose={self.log_verbose}", "--exit-timeout-secs=10", "--strict-readiness=true"]

    def start(self) -> "TritonServer":
        home = triton_home()
        self.workspace = Path(tempfile.mkdtemp(prefix="alage-triton-"))
        self.shm_prefix = f"alage_{self.workspace.name.split('-')[-1]}_{os.getpid()}_"
        python = self.workspace / "backends" / "python"
        python.mkdir(parents=True)
        for f in (home / "backends" / "python").iterdir():
            if f.is_file():
                os.symlink(f, python / f.name)
        stub = home / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}"
        shutil.copy(stub / "triton_python_backend_stub", python / "triton_python_backend_stub")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "alage_edge.serving.watchdog", str(self.workspace),
                                      self.shm_prefix, *self.remove_on_stop, "--", *self.command(home)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(home), text=True,
                                     start_new_session=True)
        first = self.proc.stdout.readline().split()
        if first[:1] != ["pid"]:
            self.proc.wait()
            raise ServerError(f"the tritonserver watchdog did not start (exit {self.proc.returncode})")
        self.server_pid = int(first[1])
        threading.Thread(target=self._read_watchdog, daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _read_watchdog(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("exit "):
                self.returncode = int(line.split()[1])

    def alive(self) -> bool:
        """Whether tritonserver is still running."""
        return self.proc is not None and self.returncode is None and self.proc.poll() is None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        pending = list(self.models)
        while pending:
            if not self.alive():
                time.sleep(0.3)  # the watchdog's "exit" line
                raise ServerError(f"tritonserver exited with code {self.returncode} while starting; "
                                  f"its log ends:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerError(f"models {pending} not ready after {self.start_timeout:.0f} s; "
                                  f"the log ends:\n{self.log_tail()}")
            if self._ok(f"{self.url}/v2/models/{pending[0]}/ready"):
                pending.pop(0)
            else:
                time.sleep(0.2)

    @staticmethod
    def _ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, n: int = 12) -> str:
        """The server log's error lines and its last ``n`` lines, without the Python backend stubs'
        tracebacks (they repeat the cause, which is in the lines kept)."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [ln for ln in lines[:-n] if ln.startswith("E") or "failed to load" in ln or "Error" in ln]
        return "\n".join(errors[-10:] + lines[-n:])

    def stop(self) -> None:
        """Stop the server: the watchdog sends SIGTERM (the server unloads its models), kills what is left of
        its process group and removes the server's workspace and temp files."""
        t0 = time.perf_counter()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.shutdown_s = time.perf_counter() - t0

    def pids(self) -> List[int]:
        """Processes still in the server's process group (empty after stop)."""
        if self.server_pid is None:
            return []
        out = []
        for d in glob.glob("/proc/[0-9]*"):
            try:
                if os.getpgid(int(d[6:])) == self.server_pid:
                    out.append(int(d[6:]))
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        return out

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


