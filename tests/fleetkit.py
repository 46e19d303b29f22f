"""Helpers the end-to-end tests and benchmarks share: kubectl, helm, a chart repo, polling.

Used by tests/conftest.py and bench/. Everything runs the real binaries from
`flotilla testbin path` against a real dev fleet.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.devfleet import testbin
from engine.devfleet.chartrepo import ChartRepo

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
FLEET_NS = "fleet"
WITHDRAW_TIMEOUT = 30


def bins() -> Path:
    return testbin.path()


class Kubectl:
    """Real kubectl against one cluster."""

    def __init__(self, kubeconfig: str | Path) -> None:
        self.kubeconfig = str(kubeconfig)

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(bins() / "kubectl"), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True, text=True, input=input, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def __call__(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def get(self, *args: str) -> dict[str, Any] | None:
        proc = self.run("get", *args, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def apply(self, manifest: str, *extra: str) -> str:
        return self("apply", "-f", "-", *extra, input=manifest)


class Helm:
    """The real helm binary against one cluster, with its own repo/cache folders."""

    def __init__(self, kubeconfig: str | Path, home: Path) -> None:
        self.kubeconfig = str(kubeconfig)
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([str(bins() / "helm"), "--kubeconfig", self.kubeconfig, *args],
                              capture_output=True, text=True, env=self.env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout


def eventually(probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.2,
               what: str = "condition") -> T:
    """Poll until probe() returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except AssertionError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for cond in (obj or {}).get("status", {}).get("conditions", []) or []:
        if cond.get("type") == ctype:
            return cond  # type: ignore[no-any-return]
    return None


class Engine:
    """The controller as a real `flotilla controller` process against the fleet."""

    def __init__(self, fleet: Any, repo: ChartRepo, mgmt: Kubectl, workdir: Path,
                 extra: tuple[str, ...] = (), kubeconfig: str | None = None) -> None:
        self.fleet, self.repo, self.mgmt, self.workdir = fleet, repo, mgmt, workdir
        self.extra = extra  # more controller flags (election, shard, health port)
        # The controller's own management kubeconfig (default: the fleet's admin one).
        self.mgmt_kubeconfig = kubeconfig or str(fleet.management.kubeconfig)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        from engine.devfleet import procs

        self.metrics_port = procs.free_port()

    def start(self) -> None:
        argv = [sys.executable, "-m", "engine.cli", "controller", "--kubeconfig",
                self.mgmt_kubeconfig, "--helm", str(bins() / "helm"),
                "--workdir", str(self.workdir / "work"), *self.repo.mirror_flags()]
        argv += ["--metrics-port", str(self.metrics_port)]
        # Short, so the withdrawal test sees an unreachable cluster let go within a test's time.
        argv += ["--withdraw-timeout", str(WITHDRAW_TIMEOUT), *self.extra]
        self.starts += 1
        log = open(self.workdir / f"controller-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp:
            return str(resp.read().decode())

    def cluster(self, name: str) -> Kubectl:
        return Kubectl(next(c.kubeconfig for c in self.fleet.clusters if c.name == name))

    def kubeconfig(self, name: str) -> str:
        return str(next(c.kubeconfig for c in self.fleet.clusters if c.name == name))

    def profile(self, name: str) -> dict[str, Any]:
        return self.mgmt.get("clusterprofile", name) or {}

    def wait_ready(self, name: str, count: int, timeout: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body = self.profile(name)
            st = body.get("status") or {}
            done = st.get("ready") == count and st.get("matched") == count
            return body if done else None
        return eventually(probe, timeout=timeout, what=f"profile {name} ready on {count}")


# Every verb but reads: server-side apply is counted as APPLY, not PATCH.
_READS = ("GET", "LIST", "WATCH", "CONNECT")
_WRITE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<n>[0-9.e+]+)$')


def workload_writes(kubectl: Kubectl, resources: tuple[str, ...]) -> int:
    """Mutating requests the API server has served for these resources, by its own count."""
    total = 0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        found = _WRITE.match(line)
        if not found:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
        if labels.get("verb") not in _READS and labels.get("resource") in resources \
                and labels.get("dry_run", "") == "":
            total += int(float(found["n"]))
    return total


def role(port: int) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return str(resp.read().decode().strip())
    except (urllib.error.URLError, OSError):
        return "down"


def reconciles(replica: Engine, reconciler: str = "") -> int:
    """flotilla_reconcile_total of one replica (of one reconciler, or all)."""
    total = 0
    for line in replica.metrics().splitlines():
        if line.startswith("flotilla_reconcile_total{") and (
                not reconciler or f'reconciler="{reconciler}"' in line):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def metric_total(replica: Engine, name: str) -> float:
    """The sum of a controller metric's samples (all label sets)."""
    total = 0.0
    for line in replica.metrics().splitlines():
        if line.startswith((f"{name} ", f"{name}{{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def drift_checked_since(replica: Engine, before: float, timeout: float = 30) -> None:
    """Wait until the drift reconciler has compared a summary with what is live since `before`
    (a value of flotilla_drift_checks_total): what it would correct, it has corrected."""
    eventually(lambda: metric_total(replica, "flotilla_drift_checks_total") > before,
               timeout=timeout, what="a drift check")
