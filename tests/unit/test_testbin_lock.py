"""Two callers of `testbin.build_once` at once run one build; the fast path takes no lock.

The real lock code runs in two real processes; only the Go build is replaced by a
small function that records who ran it and holds the lock until the test says so.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from fleetkit import ROOT, eventually

from engine.devfleet import testbin

# The child's build records its caller, then blocks until the test creates `release`,
# so the second caller is certain to arrive while the first one builds.
_CHILD = """
import sys, time
from pathlib import Path
from engine.devfleet import testbin

root, name = Path(sys.argv[1]), sys.argv[2]

def build(missing):
    with open(root / "calls", "a") as log:
        log.write(name + "\\n")
    (root / f"inside-{name}").touch()
    deadline = time.monotonic() + 60
    while not (root / "release").exists():
        if time.monotonic() > deadline:
            raise SystemExit("the test never released the build")
        time.sleep(0.02)
    for binary in missing:
        (root / "bin" / binary).write_text("built by " + name)

print(testbin.build_once(root / "bin", ["etcd", "helm"], build, lock=root / "build.lock"))
"""


def _start(root: Path, name: str) -> subprocess.Popen[str]:
    stderr = open(root / f"stderr-{name}", "w")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen([sys.executable, "-c", _CHILD, str(root), name], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
    finally:
        stderr.close()


def test_second_caller_waits_and_finds_the_binaries(tmp_path: Path) -> None:
    first = _start(tmp_path, "first")
    second: subprocess.Popen[str] | None = None
    try:
        eventually(lambda: (tmp_path / "inside-first").exists(), timeout=30,
                   what="the first caller to start building")
        second = _start(tmp_path, "second")
        eventually(lambda: "waiting for another build" in
                   (tmp_path / "stderr-second").read_text(), timeout=30,
                   what="the second caller to wait for the lock")
        (tmp_path / "release").touch()
        out_first, _ = first.communicate(timeout=30)
        out_second, _ = second.communicate(timeout=30)
        assert first.returncode == 0, (tmp_path / "stderr-first").read_text()
        assert second.returncode == 0, (tmp_path / "stderr-second").read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert (tmp_path / "calls").read_text().split() == ["first"]
    assert out_first.strip() == out_second.strip() == str(tmp_path / "bin")
    assert (tmp_path / "bin" / "helm").read_text() == "built by first"
    assert (tmp_path / "stderr-second").read_text().count("waiting for another build") == 1


def test_nothing_missing_takes_no_lock(tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.mkdir()
    for binary in ("etcd", "helm"):
        (target / binary).write_text("built")
    calls: list[list[str]] = []
    done = threading.Event()

    def check() -> None:
        testbin.build_once(target, ["etcd", "helm"], calls.append, lock=tmp_path / "build.lock")
        done.set()

    # Someone else holds the lock: a caller with nothing to build must not wait for it.
    with testbin.exclusive(tmp_path / "build.lock"):
        threading.Thread(target=check, daemon=True).start()
        assert done.wait(timeout=10), "build_once waited for the lock with nothing to build"
    assert calls == []


def test_missing_binaries_are_built_once_under_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.mkdir()
    (target / "etcd").write_text("built")
    calls: list[list[str]] = []

    def build(missing: list[str]) -> None:
        calls.append(missing)
        for binary in missing:
            (target / binary).write_text("built")

    for _ in range(2):
        assert testbin.build_once(target, ["etcd", "helm"], build,
                                  lock=tmp_path / "build.lock") == target
    assert calls == [["helm"]]
