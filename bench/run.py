"""Run every benchmark in sequence and say which ones failed.

    .venv/bin/python bench/run.py [--quick] [--cold]

Each script runs as its own child process (so one that fails, or is stopped,
cleans up after itself and the next one still starts). `--quick` and
`--cold` are passed to the scripts that take them. SIGTERM and Ctrl-C are
forwarded to the running script, which stops its fleet before exiting.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
# (script, the options of run.py it understands)
SCRIPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fleet_up.py", ("--quick", "--cold")),
    ("fleet_lean.py", ("--quick",)),
    ("label_to_ready.py", ("--quick",)),
    ("drift_idle.py", ("--quick",)),
    ("rollout_waves.py", ("--quick",)),
    ("revision_cost.py", ("--quick",)),
    ("failover.py", ("--quick",)),
    ("chaos.py", ("--quick",)),
    ("hostile.py", ("--quick",)),
    ("scale.py", ("--quick",)),
    ("planner.py", ("--quick",)),
    ("real_charts.py", ("--quick",)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions everywhere")
    parser.add_argument("--cold", action="store_true",
                        help="fleet_up.py really rebuilds the binaries (minutes)")
    args = parser.parse_args(argv)
    given = {"--quick": args.quick, "--cold": args.cold}
    current: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        # Only pass it on: the main loop's wait() returns once the script has cleaned
        # up (waiting here, inside that wait(), would deadlock on Popen's lock).
        stopping.append(signum)
        for proc in current:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    results: list[tuple[str, int, float]] = []
    for script, understood in SCRIPTS:
        if stopping:
            break
        flags = [f for f in understood if given[f]]
        print(f"\n######## {script} {' '.join(flags)}".rstrip(), flush=True)
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(HERE / script), *flags])
        current[:] = [proc]
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # The child got the same Ctrl-C (same process group) and is cleaning up.
            proc.wait()
            raise
        results.append((script, code, time.monotonic() - start))
    if stopping:
        print(f"run.py: stopped by signal {stopping[0]}", file=sys.stderr)
        return 128 + stopping[0]

    print("\n######## summary")
    for script, code, took in results:
        state = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"  {script:<20} {state:<18} {took:6.0f} s wall")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
