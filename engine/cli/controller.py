"""`flotilla controller`: run the controller in the foreground.

Used by the command line, and through it by the demo, the end-to-end tests
and the benchmarks, which start `python -m engine.cli controller` as a
process. Turns the flags into `engine.controller.main.run`'s arguments; the
controller is the one part of Flotilla that imports kopf.
"""

from __future__ import annotations

import argparse

from engine.controller import context, main


def controller_command(args: argparse.Namespace) -> int:
    mirrors = dict(item.split("=", 1) for item in args.chart_mirror)
    settings = context.Settings(withdraw_timeout=args.withdraw_timeout)
    main.run(args.kubeconfig, mirrors=mirrors, mirror_configmap=args.mirror_configmap,
             verbose=args.verbose, metrics_port=args.metrics_port, settings=settings)
    return 0
