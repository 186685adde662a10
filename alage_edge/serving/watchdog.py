"""The process between ``TritonServer`` and ``tritonserver``: it lives exactly as long as its parent.

    python -m alage_edge.serving.watchdog WORKSPACE SHM_PREFIX [ALSO...] -- tritonserver ARGS...

It starts tritonserver in its own process group (stdout and stderr to WORKSPACE/tritonserver.log, TMPDIR in
WORKSPACE) and prints ``pid N``, later ``exit CODE`` if the server ends by itself. When its standard input
closes (the parent said ``stop``, exited, or was killed with SIGKILL: the pipe closes in every case) it stops
the server (SIGTERM, then SIGKILL of the group after ``--exit-timeout``), and removes only what this server
made: WORKSPACE, each ALSO path (e.g. the temp model repository ``alage-edge serve`` wrote), the Python
backend's shared-memory regions named with SHM_PREFIX, and the Python backend's
``/tmp/python_env_*`` folder, which Triton 2.51 makes in /tmp whatever TMPDIR says: the one folder of that
name that appeared while this server ran, never one that existed before or one of two that appeared together
(another server's).
"""
from __future__ import annotations

import ctypes
import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence, Set

PYTHON_ENV = "/tmp/python_env_*"  # hard-coded in Triton's python backend (pb_env.cc), not under TMPDIR
SHM_DIR = "/dev/shm"
STOP_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM):
    """A preexec_fn: the child gets ``sig`` when the process that started it dies (Linux prctl; elsewhere
    nothing, the pipe still tells the watchdog)."""
    def set_it():
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    return set_it


def shm_regions(prefix: str) -> List[str]:
    return glob.glob(os.path.join(SHM_DIR, glob.escape(prefix) + "*"))


def group_alive(pgid: int) -> bool:
    for d in glob.glob("/proc/[0-9]*"):
        try:
            if os.getpgid(int(d[6:])) == pgid:
                return True
        except (ProcessLookupError, PermissionError, ValueError):
            pass
    return False


class EnvFolder:
    """Which /tmp/python_env_* folder is this server's: the first one that appears while it starts, when exactly
    one does (two in the same 0.2 s poll: another server started too, and neither is provably ours: both are left
    alone). Known limit: another server starting a moment before ours could have its folder taken for ours; that
    folder is empty (no EXECUTION_ENV_PATH is used) and it matters only when ours was killed, not stopped: a
    stopped server's backend removes its own."""

    def __init__(self):
        self.before: Set[str] = set(glob.glob(PYTHON_ENV))
        self.path: Optional[str] = None
        self.decided = False

    def look(self) -> None:
        if self.decided:
            return
        new = set(glob.glob(PYTHON_ENV)) - self.before
        if new:
            self.path = new.pop() if len(new) == 1 else None
            self.decided = True


def cleanup(workspace: Path, prefix: str, env: EnvFolder, also: Sequence[str] = ()) -> List[str]:
    """Remove what this server made; returns what was removed."""
    removed = []
    for p in also:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    if env.path and os.path.isdir(env.path):
        shutil.rmtree(env.path, ignore_errors=True)
        removed.append(env.path)
    for p in shm_regions(prefix):
        try:
            os.unlink(p)
            removed.append(p)
        except OSError:
            pass
    shutil.rmtree(workspace, ignore_errors=True)
    return removed


def main(argv: List[str]) -> int:
    if "--" not in argv or argv.index("--") < 2 or argv.index("--") == len(argv) - 1:
        print("usage: python -m alage_edge.serving.watchdog WORKSPACE SHM_PREFIX [ALSO...] -- COMMAND...",
              file=sys.stderr)
        return 2
    sep = argv.index("--")
    workspace, prefix, also, cmd = Path(argv[0]), argv[1], argv[2:sep], argv[sep + 1:]
    for sig in (signal.SIGINT, signal.SIGHUP):  # the parent decides; its death closes our stdin
        signal.signal(sig, signal.SIG_IGN)
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    env_folder = EnvFolder()
    env = dict(os.environ, TMPDIR=str(workspace))
    with open(workspace / "tritonserver.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=workspace, start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM))
    print(f"pid {proc.pid}", flush=True)
    stdin_closed = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stdin_closed.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    reported = False
    while not (stdin_closed.is_set() or term.is_set()):
        env_folder.look()
        if not reported and proc.poll() is not None:
            print(f"exit {proc.returncode}", flush=True)
            reported = True
        stdin_closed.wait(0.2)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # Python backend stubs the server did not reap
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    deadline = time.monotonic() + 10
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    env_folder.look()
    cleanup(workspace, prefix, env_folder, also)
    if not reported:
        try:
            print(f"exit {proc.returncode}", flush=True)
        except (BrokenPipeError, OSError):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
