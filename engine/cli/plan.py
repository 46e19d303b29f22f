"""`flotilla plan PROFILE`: what a profile would change now, cluster by cluster.

Used by the command line. The command changes nothing; the preview is the
controller's own code (`engine.controller.preview`) run once against the
management cluster, so the plan is decided exactly as a reconcile would
decide it.

Asking helm about a release that is not installed yet is how a plan learns it
would be installed; pyhelm3 logs each such call as a warning ("command failed:"
with helm's arguments, including the private kubeconfig's path). A plan's
reader wants the plan, so nothing the libraries log reaches the terminal:
failures that matter come back as errors and are printed in the plan.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from engine.adapters import helmbin
from engine.cli import mgmt
from engine.controller import preview


def quiet_libraries() -> None:
    """No log record reaches stderr: without a handler, Python prints warnings there."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def plan_command(args: argparse.Namespace) -> int:
    quiet_libraries()
    config = mgmt.config_for(args)
    helm, work = helmbin.find(args.helm), helmbin.workdir(args.workdir)
    found = asyncio.run(preview.plan(config, args.profile, helm=helm, workdir=work))
    print(mgmt.emit(found, args.output, preview.text(found)))
    return 0
