"""`flotilla controller`: run the controller in the foreground.

Used by the command line, and through it by the demo, the end-to-end tests,
the benchmarks and the Helm chart's Deployment, which start
`flotilla controller` as a process. Turns the flags into
`engine.controller.options.Options`, finding helm first (a missing or
unsupported helm is a clear startup error, not a failure on the first
release); the controller is the one part of Flotilla that imports kopf.
"""

from __future__ import annotations

import argparse
import os

from engine.adapters import helmbin, kustomizebin
from engine.controller import context, leader, main
from engine.controller.options import Options


def controller_command(args: argparse.Namespace) -> int:
    timings = leader.Timings(lease_duration=args.lease_duration,
                             renew_deadline=args.renew_deadline, retry_period=args.retry_period)
    timings.check()
    if args.kubectl:  # read by adapters.kustomizebin when a kustomization is first built
        os.environ[kustomizebin.ENV] = args.kubectl
        kustomizebin.locate()  # a wrong --kubectl stops here, not at the first profile
    options = Options(
        kubeconfig=args.kubeconfig, helm=helmbin.find(args.helm),
        workdir=helmbin.workdir(args.workdir),
        mirrors=dict(item.split("=", 1) for item in args.chart_mirror),
        mirror_configmap=args.mirror_configmap,
        settings=context.Settings(withdraw_timeout=args.withdraw_timeout,
                                  shard_key=args.shard_key or None),
        bind_address=args.bind_address, metrics_port=args.metrics_port,
        health_port=args.health_port, leader_elect=args.leader_elect,
        lease_namespace=args.lease_namespace, lease_name=args.lease_name, timings=timings,
        log_format=args.log_format, log_level="debug" if args.verbose else args.log_level,
        max_helm=args.max_helm, max_workload_requests=args.max_workload_requests)
    main.run(options)
    return 0
