"""`flotilla catalog lint [DIR]`: check catalog entries against their real charts.

Used by the command line. Maps the flags onto `engine.catalog_lint_run`,
which pulls each version's chart through the chart mirror map and reports
one line per finding, with the helm that `--helm`, $FLOTILLA_HELM or PATH names.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine import catalog_lint_run
from engine.adapters import helmbin


def lint_command(args: argparse.Namespace) -> int:
    mirrors = dict(item.split("=", 1) for item in args.chart_mirror)
    return catalog_lint_run.run(Path(args.dir), mirrors=mirrors, helm=helmbin.find(args.helm),
                                kube_version=args.kube_version,
                                charts_folder=Path(args.charts) if args.charts else None)

