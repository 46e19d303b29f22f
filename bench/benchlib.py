"""What the benchmark scripts share: figures, tables, /proc readings, clean-up guarantees.

Used by every script in bench/. Nothing here starts a process: the scripts
call `engine.devfleet.fleet` themselves and stop every fleet with
`fleet.down` in a `finally` — which also runs on Ctrl-C and, through
`exit_on_sigterm`, on SIGTERM; `shielded` keeps a second signal from cutting
that clean-up short. `leftovers` is the check that it worked.

Figures are medians (with min and max) because the machine is small and
noisy; a single run says little.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
TMP = Path("/tmp")
MIB = 1024 * 1024


class BenchError(RuntimeError):
    """A benchmark could not produce its figure; the message says what was waited for."""


# -- clean-up ------------------------------------------------------------------------------


_SIGNALS: dict[str, int] = {"shield": 0, "pending": 0}


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit so every `finally` runs; it and Ctrl-C wait out `shielded`."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if _SIGNALS["shield"]:
            _SIGNALS["pending"] = signum
            return
        _raise_for(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Clean-up that a signal must not cut short (fleet.down half done leaves processes behind).

    A SIGTERM or Ctrl-C arriving inside is held and acted on once the block is done.
    """
    _SIGNALS["shield"] += 1
    try:
        yield
    finally:
        _SIGNALS["shield"] -= 1
    if not _SIGNALS["shield"] and _SIGNALS["pending"]:
        signum, _SIGNALS["pending"] = _SIGNALS["pending"], 0
        _raise_for(signum)


# The folders this process made: leftovers are judged on these alone, so another
# benchmark's fleet running beside this one is not reported as ours.
_MADE: list[Path] = []


def temp_dir(prefix: str) -> Path:
    made = Path(tempfile.mkdtemp(prefix=f"flotilla-bench-{prefix}-", dir=TMP))
    _MADE.append(made)
    return made


def remove_tree(path: Path) -> None:
    """rm -rf, also for Go's read-only module cache folders."""

    def make_writable(func: Callable[..., object], target: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            func(target)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable)


def leftovers() -> list[str]:
    """Processes still running with one of our /tmp folders in their command line: none, we hope."""
    found: list[str] = []
    if not _MADE:
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv if a)
        if any(str(folder) in text for folder in _MADE):
            found.append(f"{entry.name} {text[:120]}")
    return found


def check_leftovers(script: str, grace: float = 5.0) -> None:
    """Warn about leftovers; a process SIGKILLed a moment ago gets `grace` seconds to vanish."""
    deadline = time.monotonic() + grace
    while True:
        _reap_children()
        found = leftovers()
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for line in found:
        print(f"{script}: WARNING: still running after clean-up: {line}", file=sys.stderr)


def _reap_children() -> None:
    """Collect our own exited children, so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


# -- /proc -------------------------------------------------------------------------------------


def proc_status_kib(pid: int, field: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM, …) in KiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise BenchError(f"process {pid} is gone; cannot read its {field}") from exc
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {field} line")


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds of one process and of its children that it has already waited for."""

    user: float
    system: float
    children_user: float
    children_system: float

    @property
    def own(self) -> float:
        return self.user + self.system

    @property
    def children(self) -> float:
        return self.children_user + self.children_system

    @property
    def total(self) -> float:
        return self.own + self.children

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system,
                        self.children_user - other.children_user,
                        self.children_system - other.children_system)


def cpu_times(pid: int) -> CpuTimes:
    """utime, stime, cutime, cstime (fields 14-17 of /proc/<pid>/stat) in seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        raise BenchError(f"process {pid} is gone; cannot read its CPU time") from exc
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = raw.rsplit(")", 1)[1].split()
    tick = float(os.sysconf("SC_CLK_TCK"))
    utime, stime, cutime, cstime = (int(f) / tick for f in fields[11:15])
    return CpuTimes(utime, stime, cutime, cstime)


# -- figures and tables ---------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise BenchError("no samples")
        return cls(statistics.median(values), min(values), max(values), len(values))


def verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else "MISS"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: str = "  ") -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        parts = [row[0].ljust(widths[0]), *rest]
        return indent + "  ".join(parts).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def heading(text: str) -> None:
    print(f"\n== {text} ==", flush=True)


def note(text: str) -> None:
    print(f"  {text}", flush=True)


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}, python {sys.version.split()[0]}"


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
