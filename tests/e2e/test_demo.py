"""`flotilla demo --keep` end to end: the story on a fleet of its own, then `dev-fleet down`.

The demo starts its own fleet (management + three clusters, two full) in a
temporary folder, not the session's. The output must show each step's proof
in order (GPU clusters only and canary first, drift with its field path and
corrected, the values change staged, the withdrawal), and with --keep the
controller and chart repository must still run afterwards until `flotilla
dev-fleet down` stops them along with the fleet. About 2.5 minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.devfleet import fleet, procs


def test_demo_tells_the_story_and_down_stops_the_kept_controller(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    try:
        run = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--dir", str(workdir),
                              "--keep"], capture_output=True, text=True, timeout=420)
        out = run.stdout
        assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
        steps = ["1. Label every cluster", "canary: 1/1 done", "main: 1/1 done",
                 "rollout of revision 1 complete", "cp-gpu-inference-cluster-1",
                 "✗ clusterSelectorCEL", "2. Someone edits cluster-2",
                 "Deployment gpu-operator/gpu-operator drifted: /spec/replicas",
                 "the summary's status.drift is empty again",
                 "3. A values change", "ClusterProfile gpu-inference revision 2",
                 "rollout of revision 2 complete",
                 "changed: spec /services/0/parameters/timeSlicingReplicas",
                 "4. Remove the label", "Done in", f"flotilla dev-fleet down --dir {workdir}"]
        at = [out.find(step) for step in steps]
        assert all(i >= 0 for i in at), [s for s, i in zip(steps, at, strict=True) if i < 0]
        assert at == sorted(at)
        # Revision 2 reached the canary before the main stage started on it.
        rev2 = out[out.index("3. A values change"):]
        assert rev2.index("canary: 1/1 done") < rev2.index("main: 1/1 done")
        assert "cp-gpu-inference-cluster-3" not in out

        kept = {name: pid for pid, name in procs.recorded(workdir)}
        assert procs.alive(kept["controller"]) and procs.alive(kept["chart-repo"])
    finally:
        down = subprocess.run([sys.executable, "-m", "engine.cli", "dev-fleet", "down", "--dir",
                               str(workdir)], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not procs.alive(kept["controller"]) and not procs.alive(kept["chart-repo"])
    assert not any(procs.alive(pid) for pid in kept.values())
    assert fleet.status(workdir)["running"] == {}
