"""`flotilla plan PROFILE`: what a profile would change now, cluster by cluster.

Used by the command line. The command changes nothing; the preview is the
controller's own code (`engine.controller.preview`) run once against the
management cluster, so the plan is decided exactly as a reconcile would
decide it.
"""

from __future__ import annotations

import argparse
import asyncio

from engine.adapters import helmbin
from engine.controller import preview


def plan_command(args: argparse.Namespace) -> int:
    helm, work = helmbin.find(args.helm), helmbin.workdir(args.workdir)
    print(asyncio.run(preview.render_plan(args.kubeconfig, args.profile, helm=helm,
                                          workdir=work)))
    return 0
