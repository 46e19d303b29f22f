"""--max-helm: helm processes wait for a slot, whichever Releases (cluster) starts them.

A stand-in helm (a shell script: it answers `version`, and otherwise notes
that it runs, sleeps and notes that it ended) is run by real subprocesses
through pyhelm3, as the controller runs the real one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.adapters import helm

SCRIPT = """#!/bin/sh
if [ "$1" = version ]; then printf v3.18.4; exit 0; fi
echo start >> {log}
sleep 0.3
echo end >> {log}
printf '{{}}'
"""


def _most_at_once(log: Path) -> int:
    running = most = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        most = max(most, running)
    return most


def _most_running(tmp_path: Path, slots: int) -> int:
    """Six helm runs (two on each of three clusters) asked for at once, `slots` allowed."""
    log = tmp_path / "runs"
    binary = tmp_path / "helm"
    binary.write_text(SCRIPT.format(log=log))
    binary.chmod(0o755)

    async def scenario() -> None:
        helm.limit_processes(slots)
        clusters = [helm.Releases("apiVersion: v1\nkind: Config\n", tmp_path / f"c{i}", binary)
                    for i in range(3)]
        await asyncio.gather(*(r._run(["status", "x"], "test") for r in clusters for _ in "ab"))

    try:
        asyncio.run(scenario())
    finally:
        helm.limit_processes(helm.MAX_PROCESSES)
    assert log.read_text().split().count("start") == 6  # all ran, none lost
    return _most_at_once(log)


@pytest.mark.parametrize("slots", [1, 2])
def test_helm_processes_wait_for_a_slot(tmp_path: Path, slots: int) -> None:
    assert _most_running(tmp_path, slots) == slots


def test_with_slots_enough_they_overlap(tmp_path: Path) -> None:
    """The control: the same six runs do overlap when allowed (so the count can fail)."""
    assert _most_running(tmp_path, 6) > 2
