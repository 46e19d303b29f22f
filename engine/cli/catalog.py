"""`flotilla catalog lint [DIR]`: check catalog entries against their real charts.

Used by the command line. Maps the flags onto `engine.catalog_lint_run`,
which pulls each version's chart through the chart mirror map and reports
one line per finding, and finds the helm binary it renders with.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from engine import catalog_lint_run


def lint_command(args: argparse.Namespace) -> int:
    mirrors = dict(item.split("=", 1) for item in args.chart_mirror)
    return catalog_lint_run.run(Path(args.dir), mirrors=mirrors, helm=helm_binary(args.helm),
                                kube_version=args.kube_version,
                                charts_folder=Path(args.charts) if args.charts else None)


def helm_binary(explicit: str | None) -> Path:
    """--helm, else FLOTILLA_HELM, else helm on PATH, else the dev test binaries."""
    found = explicit or os.environ.get("FLOTILLA_HELM") or shutil.which("helm")
    if found:
        return Path(found)
    # Only a machine without helm gets here: a developer's, whose test binaries include one.
    from engine.devfleet import testbin

    return testbin.path() / "helm"
