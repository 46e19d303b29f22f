"""`flotilla plan PROFILE`: what a profile would change now, cluster by cluster.

Used by the command line. The command changes nothing; the preview is the
controller's own code (`engine.controller.preview`) run once against the
management cluster, so the plan is decided exactly as a reconcile would
decide it.
"""

from __future__ import annotations

import argparse
import asyncio

from engine.controller import preview


def plan_command(args: argparse.Namespace) -> int:
    print(asyncio.run(preview.render_plan(args.kubeconfig, args.profile)))
    return 0
