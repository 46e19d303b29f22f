"""Start and stop the dev fleet's child processes, crash-safely, by pid.

Used by `engine.devfleet.fleet`. Every process is started in its own session
(so its pid is its process-group id) with output to a log file, and its pid
is appended to `DIR/pids` *before* anything else happens, so `down` can stop
it even when `up` crashed halfway. `stop_all` checks that a pid still runs a
command started from this fleet folder before signalling it, so a recycled
pid is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

PID_FILE = "pids"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(fleet_dir: Path, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    logs = fleet_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=fleet_dir, env={**os.environ, **(env or {})},
        )
    with open(fleet_dir / PID_FILE, "a") as pids:
        pids.write(f"{proc.pid} {name}\n")
    return proc.pid


def recorded(fleet_dir: Path) -> list[tuple[int, str]]:
    path = fleet_dir / PID_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        pid, _, name = line.partition(" ")
        if pid.isdigit():
            out.append((int(pid), name))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A zombie (state Z) has exited; only its parent's wait() remains.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _ours(pid: int, fleet_dir: Path) -> bool:
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return Path(cwd).resolve() == fleet_dir.resolve()


def stop_all(fleet_dir: Path, timeout: float = 10.0) -> list[int]:
    """SIGTERM every recorded process group, SIGKILL what remains; returns the pids stopped."""
    names = dict(recorded(fleet_dir))
    targets = [pid for pid in names if alive(pid) and _ours(pid, fleet_dir)]
    # Everything else first and etcd only once they are gone: an API server whose
    # storage vanished hangs until killed, which made every `down` take the full timeout.
    _stop([p for p in targets if names[p] != "etcd"], timeout)
    _stop([p for p in targets if names[p] == "etcd"], timeout)
    (fleet_dir / PID_FILE).unlink(missing_ok=True)
    return targets


def stop(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM one recorded process group, SIGKILL it if it is still there after `timeout`."""
    _stop([pid], timeout)


def _stop(pids: list[int], timeout: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        _reap()
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    _reap()


def _reap() -> None:
    """Collect exited children of this process so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
