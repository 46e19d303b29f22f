"""`flotilla rollout status PROFILE --watch`: live stage progress until the rollout settles.

Used by `engine.cli.rollout` (`watch`). Like `kubectl rollout status`, so CI
can gate on it: exit 0 when the rollout completes, 1 when it fails or rolls
back, 2 when it is paused or waits for a manual approval, 3 when `--timeout`
passes first. Three watches on the management API (the profile, its
ClusterSummaries, the WorkloadClusters for stage selectors) keep a local copy
current; each is re-listed when the server ends it or its resourceVersion
expires. Between events a one-second tick redraws, since a soak ends by time
alone. Progress is shown, and a completed rollout counts, only once the
controller has observed the profile's current generation, so a spec edited
just before the watch starts is never reported by its previous revision's
status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import yaml

from engine import api, errors
from engine.adapters import kube
from engine.cli import mgmt, status, views

EXIT_COMPLETE, EXIT_FAILED, EXIT_PAUSED, EXIT_TIMEOUT = 0, 1, 2, 3


def observed(profile: dict[str, Any]) -> bool:
    """Whether the profile's status speaks of its current spec (generation)."""
    st = profile.get("status") or {}
    return bool(st.get("observedGeneration") == profile["metadata"].get("generation"))


def outcome(profile: dict[str, Any]) -> tuple[int, str] | None:
    """The exit code and its one line once the rollout has settled, else None."""
    st = profile.get("status") or {}
    if not observed(profile):
        return None  # the controller has not seen the current spec yet
    ro = st.get("rollout") or {}
    phase, revision = ro.get("phase"), ro.get("targetRevision")
    if phase == "Complete" and revision == st.get("revision"):
        return EXIT_COMPLETE, f"rollout of revision {revision} complete"
    if phase in ("Failed", "RollingBack"):
        return EXIT_FAILED, f"rollout of revision {revision} {phase.lower()}: " \
                            f"{ro.get('message', '')}".rstrip(": ")
    if phase == "Paused":
        return EXIT_PAUSED, f"rollout of revision {revision} is paused " \
                            "(flotilla rollout resume to continue)"
    if phase == "WaitingApproval":
        return EXIT_PAUSED, f"rollout of revision {revision} waits for approval of stage " \
                            f"{ro.get('stage', '')} (flotilla rollout approve)"
    return None


class Follower:
    """A local copy of one list, kept current by a watch (re-listed when the watch ends)."""

    def __init__(self, client: kube.Client, kind: str, changed: asyncio.Event, *,
                 namespace: str | None = None, label_selector: str | None = None,
                 keep: Callable[[dict[str, Any]], bool] = lambda _: True) -> None:
        self.client, self.kind, self.changed = client, kind, changed
        self.namespace, self.label_selector, self.keep = namespace, label_selector, keep
        self.items: dict[str, dict[str, Any]] = {}
        self.listed = False

    @staticmethod
    def _key(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace') or ''}/{meta.get('name', '')}"

    async def run(self) -> None:
        while True:
            items, version = await self.client.list_versioned(
                api.API_VERSION, self.kind, namespace=self.namespace,
                label_selector=self.label_selector)
            self.items = {self._key(i): i for i in items if self.keep(i)}
            self.listed = True
            self.changed.set()
            try:
                async for kind, obj in self.client.watch(
                        api.API_VERSION, self.kind, namespace=self.namespace,
                        label_selector=self.label_selector, resource_version=version):
                    if kind == "BOOKMARK" or not self.keep(obj):
                        continue
                    obj.setdefault("kind", self.kind)
                    if kind == "DELETED":
                        self.items.pop(self._key(obj), None)
                    else:
                        self.items[self._key(obj)] = obj
                    self.changed.set()
            except kube.ApiError as exc:
                if exc.status != 410:  # 410 Gone: the version expired, list again
                    raise


class Screen:
    """Draws the progress: redrawn in place on a terminal, changed lines only otherwise."""

    def __init__(self, out: TextIO, *, terminal: bool, output: str | None) -> None:
        self.out, self.terminal, self.output = out, terminal, output
        self.drawn: list[str] = []

    def show(self, view: dict[str, Any]) -> None:
        if self.output == "json":
            line = json.dumps(view, sort_keys=False)
            if [line] != self.drawn:
                print(line, file=self.out, flush=True)
                self.drawn = [line]
            return
        if self.output == "yaml":
            doc = yaml.safe_dump(view, sort_keys=False)
            if [doc] != self.drawn:
                print("---\n" + doc.rstrip("\n"), file=self.out, flush=True)
                self.drawn = [doc]
            return
        lines = views.render_progress(view, terminal=self.terminal)
        if self.terminal:
            # A wrapped line would throw the redraw's line count off: cut at the width.
            width = shutil.get_terminal_size().columns - 1
            lines = [line[:width] for line in lines]
            if self.drawn:  # up to the first line drawn, then clear to the end of the screen
                self.out.write(f"\x1b[{len(self.drawn)}F\x1b[J")
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        else:
            for i, line in enumerate(lines):
                if i >= len(self.drawn) or self.drawn[i] != line:
                    print(line.strip() if i else line, file=self.out, flush=True)
        self.drawn = lines


async def watch(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    ref: str = args.profile
    kind, ns, name = (api.PROFILE, *ref.split("/", 1)) if "/" in ref else (
        api.CLUSTER_PROFILE, None, ref)
    client = mgmt.client(args)
    changed = asyncio.Event()
    profile = Follower(client, kind, changed, namespace=ns,
                       keep=lambda o: o["metadata"]["name"] == name)
    summaries = Follower(client, api.CLUSTER_SUMMARY, changed,
                         label_selector=api.profile_selector(kind, name))
    clusters = Follower(client, api.WORKLOAD_CLUSTER, changed)
    followers = (profile, summaries, clusters)
    tasks = [asyncio.create_task(f.run()) for f in followers]
    screen = Screen(out, terminal=out.isatty() and args.output is None, output=args.output)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while True:
            for task in tasks:
                if task.done():
                    task.result()  # a watch that failed for good: its error ends the command
            if all(f.listed for f in followers):
                body = next(iter(profile.items.values()), None)
                if body is None:
                    raise errors.NonRetriableError(f"{kind} {ref} not found", reason="NotFound")
                # Until the controller has seen the current spec, the status names the last
                # revision while summaries may already carry the new one: a view of both
                # mixed showed a stage done at the old revision ahead of the new one.
                if observed(body):
                    screen.show(views.profile_view(body, status.summaries_of(
                        body, list(summaries.items.values())), list(clusters.items.values()),
                        now=time.time()))
                settled = outcome(body)
                if settled is not None:
                    print(settled[1], file=out if settled[0] == EXIT_COMPLETE else sys.stderr)
                    return settled[0]
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                print(f"timed out after {args.timeout:g}s waiting for the rollout of {ref}",
                      file=sys.stderr)
                return EXIT_TIMEOUT
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(1.0, left) if left else 1.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
