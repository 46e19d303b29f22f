"""`/healthz` and `/readyz` for kubelet probes and load balancers.

Used by `main` when `--health-port` is set. `/healthz` answers 200 while the
event loop runs (a wedged loop cannot answer, which is what a liveness probe
should catch). `/readyz` answers 200 once the cache is filled and the replica
has settled into a role — leader or standby both count: a standby is ready to
take over, and taking it out of a Service would gain nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


async def serve(address: str, port: int, *, ready: Callable[[], tuple[bool, str]],
                ) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        ok, why = ready()
        return web.Response(text=why + "\n", status=200 if ok else 503)

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
