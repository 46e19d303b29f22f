"""The controller as a child process, and watches that note when something first holds.

Used by bench/label_to_ready.py, bench/benchfleet.py and bench/failover.py
(two replicas with `--leader-elect`, through `extra`). `Controller` runs
`python -m engine.cli controller` in its own session with its caches under a
/tmp folder and stops it, helm children included.
`Tracker` keeps a live copy of one collection (list, then watch from the
list's resourceVersion, re-listing when a stream ends) and records the
monotonic time at which a predicate over it first holds — event-driven, so
figures are not rounded to a polling interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib as bl

from engine import errors
from engine.adapters import kube
from engine.devfleet import testbin

Obj = dict[str, Any]


class Controller:
    """`flotilla controller` as a child process in its own session, with caches under /tmp."""

    def __init__(self, kubeconfig_path: str, workdir: Path, mirrors: dict[str, str],
                 extra: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.log = workdir / "controller.log"
        self.argv = [sys.executable, "-m", "engine.cli", "controller",
                     "--kubeconfig", kubeconfig_path]
        for upstream, local in sorted(mirrors.items()):
            self.argv += ["--chart-mirror", f"{upstream}={local}"]
        self.argv += extra  # more flags: leader election, health and metrics ports
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cache = self.workdir / "cache"
        # Same binaries, but its chart cache, cluster kubeconfigs and helm's own
        # folders live in our temp dir instead of ~/.cache.
        env = dict(os.environ, FLOTILLA_CACHE=str(cache),
                   KUBEBUILDER_ASSETS=str(testbin.path()),
                   FLOTILLA_HELM=str(testbin.path() / "helm"),
                   FLOTILLA_WORKDIR=str(cache / "controller"),
                   HELM_CACHE_HOME=str(cache / "helm-cache"),
                   HELM_CONFIG_HOME=str(cache / "helm-config"),
                   HELM_DATA_HOME=str(cache / "helm-data"))
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=bl.ROOT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise bl.BenchError(f"the controller exited (code {code}); log {self.log}:\n"
                                f"{self.tail()}")

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM its process group (it and any helm it runs), SIGKILL after 15 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        else:
            # It exited by itself; helm children it left behind share its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None


# -- watching for "the first moment something holds" -----------------------------------------


Predicate = Callable[[dict[str, Obj]], bool]


class Tracker:
    """A live copy of one collection (list, then watch) noting when a predicate first holds."""

    def __init__(self, client: kube.Client, api_version: str, kind: str, pred: Predicate, *,
                 namespace: str | None = None, label_selector: str | None = None,
                 what: str = "") -> None:
        self.client, self.api_version, self.kind, self.pred = client, api_version, kind, pred
        self.namespace, self.label_selector = namespace, label_selector
        self.what = what or f"{kind} on {client.name}"
        self.objects: dict[str, Obj] = {}
        self.listed = asyncio.Event()
        self.done = asyncio.Event()
        self.done_at: float | None = None
        self.last_error = ""

    def _check(self) -> None:
        if not self.done.is_set() and self.pred(self.objects):
            self.done_at = time.monotonic()
            self.done.set()

    async def run(self) -> None:
        while not self.done.is_set():
            try:
                res = await self.client.resource(self.api_version, self.kind)
                params = {"labelSelector": self.label_selector} if self.label_selector else None
                doc = await self.client.request("GET", res.path(self.namespace), params=params)
                self.objects = {key(o): o for o in doc.get("items", [])}
                self._check()
                self.listed.set()
                async for type_, obj in self.client.watch(
                        self.api_version, self.kind, namespace=self.namespace,
                        label_selector=self.label_selector,
                        resource_version=doc["metadata"]["resourceVersion"], timeout_seconds=120):
                    if type_ == "BOOKMARK":
                        continue
                    if type_ == "DELETED":
                        self.objects.pop(key(obj), None)
                    else:
                        self.objects[key(obj)] = obj
                    self._check()
                    if self.done.is_set():
                        return
            except errors.FlotillaError as exc:  # expired resourceVersion, a dropped stream
                self.last_error = str(exc)
                await asyncio.sleep(0.2)


def key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def has_name(name: str) -> Predicate:
    return lambda objects: name in names(objects)


def names(objects: dict[str, Obj]) -> set[str]:
    return {o["metadata"]["name"] for o in objects.values()
            if not o["metadata"].get("deletionTimestamp")}
