"""`flotilla dashboard`: a read-only web page of the fleet, updated live.

Used by the command line. Serves, with aiohttp, on loopback by default:
`/` the page (server-rendered HTML and a few lines of JavaScript, no build
step), `/stream` server-sent events carrying the page's live part whenever it
changes, `/api/fleet` the same facts as JSON. Five watches on the management
API (ClusterProfiles, Profiles, ClusterSummaries, WorkloadClusters, Events)
keep local copies current, each re-listed when the server ends it or its
resourceVersion expires; `engine.cli.dashview` builds the view from them.
Nothing here writes to any cluster. No login: it refuses to bind anything but
a loopback address unless `--allow-remote` says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import sys
import time
from typing import Any

from aiohttp import web

from engine import api, errors
from engine.adapters import kube
from engine.cli import dashview, mgmt

EVENT_WINDOW = 500  # at most this many Events are kept; the page shows the newest


def loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class _List:
    """One list of the management API, kept current by a watch."""

    def __init__(self, client: kube.Client, api_version: str, kind: str,
                 changed: asyncio.Event) -> None:
        self.client, self.api_version, self.kind, self.changed = client, api_version, kind, \
            changed
        self.items: dict[str, dict[str, Any]] = {}
        self.listed = False

    @staticmethod
    def _key(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace') or ''}/{meta.get('name', '')}"

    async def run(self) -> None:
        while True:
            try:
                items, version = await self.client.list_versioned(self.api_version, self.kind)
                self.items = {self._key(i): {**i, "kind": self.kind} for i in items}
                self.listed = True
                self.changed.set()
                async for kind, obj in self.client.watch(self.api_version, self.kind,
                                                         resource_version=version):
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.items.pop(self._key(obj), None)
                    else:
                        self.items[self._key(obj)] = {**obj, "kind": self.kind}
                        if self.kind == "Event" and len(self.items) > EVENT_WINDOW:
                            oldest = min(self.items, key=lambda k: str(
                                self.items[k].get("lastTimestamp") or ""))
                            self.items.pop(oldest)
                    self.changed.set()
            except (kube.ApiError, kube.Unreachable):
                await asyncio.sleep(2)  # 410 Gone or a dropped connection: list again


class Dashboard:
    def __init__(self, client: kube.Client) -> None:
        self.changed = asyncio.Event()
        self.lists = {kind: _List(client, version, kind, self.changed) for version, kind in (
            (api.API_VERSION, api.CLUSTER_PROFILE), (api.API_VERSION, api.PROFILE),
            (api.API_VERSION, api.CLUSTER_SUMMARY), (api.API_VERSION, api.WORKLOAD_CLUSTER),
            ("v1", "Event"))}
        self.view: dict[str, Any] = {}
        self.fragment = "<p class=muted>Reading the management cluster…</p>"
        self.version = 0
        self.updated = asyncio.Condition()

    def build(self) -> None:
        items = {k: list(v.items.values()) for k, v in self.lists.items()}
        view = dashview.fleet_view(
            items[api.CLUSTER_PROFILE] + items[api.PROFILE], items[api.CLUSTER_SUMMARY],
            items[api.WORKLOAD_CLUSTER], items["Event"], now=time.time())
        fragment = dashview.render(view)
        self.view = view
        if fragment != self.fragment:
            self.fragment = fragment
            self.version += 1

    async def refresh(self) -> None:
        """Rebuild on every change, and each second (a soak's standing changes by time alone)."""
        while True:
            if all(v.listed for v in self.lists.values()):
                before = self.version
                try:
                    self.build()
                except Exception as exc:  # the page keeps its last good state
                    print(f"dashboard: cannot build the view: {type(exc).__name__}: {exc}",
                          file=sys.stderr, flush=True)
                if self.version != before:
                    async with self.updated:
                        self.updated.notify_all()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)

    async def page(self, _: web.Request) -> web.Response:
        return web.Response(text=dashview.page(self.fragment), content_type="text/html")

    async def fleet(self, _: web.Request) -> web.Response:
        return web.json_response(self.view)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        sent = -1
        while True:
            if sent != self.version:
                sent = self.version
                await resp.write(f"data: {json.dumps(self.fragment)}\n\n".encode())
            async with self.updated:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.updated.wait(), 15)
            if sent == self.version:
                await resp.write(b": keep-alive\n\n")


async def serve(args: argparse.Namespace) -> int:
    if not loopback(args.address) and not args.allow_remote:
        raise errors.SpecError(
            f"--address {args.address} is not a loopback address; the dashboard has no login, "
            "so binding elsewhere needs --allow-remote", reason="NotLoopback", field="--address")
    client = mgmt.client(args)
    board = Dashboard(client)
    tasks = [asyncio.create_task(v.run()) for v in board.lists.values()]
    tasks.append(asyncio.create_task(board.refresh()))
    app = web.Application()
    app.router.add_get("/", board.page)
    app.router.add_get("/stream", board.stream)
    app.router.add_get("/api/fleet", board.fleet)
    runner = web.AppRunner(app, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, args.address, args.port)
    try:
        await site.start()
        host = f"[{args.address}]" if ":" in args.address else args.address
        print(f"Flotilla dashboard on http://{host}:{args.port}/ (read-only; Ctrl-C stops it)",
              flush=True)
        await asyncio.Event().wait()
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        await client.close()


def dashboard_command(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args))
    return 0
