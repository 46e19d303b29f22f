"""Run the controller in the foreground: `flotilla controller [--kubeconfig MGMT]`.

Used by the CLI, and through it by the demo, the end-to-end tests, the
benchmarks and the Helm chart's Deployment. `run()` sets up logging, the
health and metrics endpoints and (with `--leader-elect`) the Lease
campaign, then runs kopf against the management cluster until SIGTERM or
SIGINT. kopf watches in every replica so a standby's cache is warm; only the
leader's work queue runs (`handlers`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import kopf
import prometheus_client

from engine.controller import handlers, logs, probes
from engine.controller.options import Options


def run(options: Options, *, stop_flag: threading.Event | None = None) -> None:
    logs.configure(options.log_format, options.log_level)
    if options.kubeconfig:
        os.environ["KUBECONFIG"] = str(Path(options.kubeconfig).resolve())
    handlers.OPTIONS = options
    if options.metrics_port:
        # flotilla_* counters and gauges (drift, queue), plus process stats.
        prometheus_client.start_http_server(options.metrics_port, addr=options.bind_address)
    kopf.configure(verbose=options.log_level == "debug")
    logs.configure(options.log_format, options.log_level)  # kopf.configure resets handlers
    asyncio.run(_operate(options, stop_flag))


async def _operate(options: Options, stop_flag: threading.Event | None) -> None:
    # kopf handles SIGTERM/SIGINT itself (graceful stop, then our cleanup handler, which
    # releases the Lease); `stop` is for embedders and for a lost Lease.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers.STATE["stop"] = stop
    if stop_flag is not None:
        loop.run_in_executor(None, lambda: (stop_flag.wait(), loop.call_soon_threadsafe(
            stop.set)))
    server = None
    if options.health_port:
        server = await probes.serve(options.bind_address, options.health_port,
                                    ready=handlers.ready)
    try:
        await kopf.operator(clusterwide=True, standalone=True, stop_flag=stop)
    finally:
        if server is not None:
            await server.cleanup()
