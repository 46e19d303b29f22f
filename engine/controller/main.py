"""Run the controller in the foreground: `flotilla controller --kubeconfig MGMT`.

Used by the CLI, the demo and the end-to-end tests. Points kopf at the
management cluster through the kubeconfig, registers the handlers and runs
until interrupted. Standalone: one controller per management cluster, no
peering objects needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import kopf
import prometheus_client

from engine.controller import context, handlers


def configure(kubeconfig: str, mirrors: Mapping[str, str], mirror_configmap: str,
              settings: context.Settings | None = None) -> None:
    os.environ["KUBECONFIG"] = str(Path(kubeconfig).resolve())
    handlers.CONFIG.update(kubeconfig=str(Path(kubeconfig).resolve()), mirrors=dict(mirrors),
                           mirror_configmap=mirror_configmap,
                           settings=settings or context.Settings())


def run(kubeconfig: str, *, mirrors: Mapping[str, str], mirror_configmap: str = "",
        verbose: bool = False, stop_flag: threading.Event | None = None,
        ready_flag: threading.Event | None = None, metrics_port: int = 0,
        settings: context.Settings | None = None) -> None:
    configure(kubeconfig, mirrors, mirror_configmap, settings)
    if metrics_port:
        # flotilla_drift_* counters and gauges (engine.controller.drifts), plus process stats.
        prometheus_client.start_http_server(metrics_port, addr="127.0.0.1")
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    # cel-python logs every compiled program at INFO; pyhelm3 logs helm's expected
    # "release not found" answers as failures. Neither helps an operator reading the log.
    logging.getLogger("celpy").setLevel(logging.WARNING)
    logging.getLogger("pyhelm3").setLevel(logging.CRITICAL if not verbose else logging.DEBUG)
    logging.getLogger("flotilla").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
    asyncio.run(kopf.operator(clusterwide=True, standalone=True, stop_flag=stop_flag,
                              ready_flag=ready_flag))
