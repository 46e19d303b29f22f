"""Unit tests for the helm command lines built from resolved Helm options."""

from __future__ import annotations

from typing import Any

import pyhelm3.errors

from engine.adapters import helm, helmargs
from engine.model.helmopts import HelmOptions


def opts(data: dict[str, Any]) -> HelmOptions:
    return HelmOptions.from_dict(data, field="spec.helmCharts[0].options")


def test_install_flags() -> None:
    resolved = opts({"timeout": "90s", "atomic": True, "labels": {"b": "2", "a": "1"},
                     "installOptions": {"takeOwnership": True, "replace": False},
                     "upgradeOptions": {"force": True}}).resolved()
    argv = helmargs.install("rel", "/charts/app", "apps", resolved, post_render=["--pr"])
    assert argv[:3] == ["install", "rel", "/charts/app"]
    assert argv[argv.index("--timeout") + 1] == "1m30s"
    assert argv[argv.index("--labels") + 1] == "a=1,b=2"
    assert {"--atomic", "--create-namespace", "--take-ownership"} <= set(argv)
    assert "--replace" not in argv and "--force" not in argv  # upgrade-only stays out
    assert argv[-1] == "--pr"


def test_upgrade_and_uninstall_flags() -> None:
    resolved = opts({"disableHooks": True, "upgradeOptions": {"maxHistory": 2,
                                                             "cleanupOnFail": True},
                     "uninstallOptions": {"keepHistory": True,
                                          "deletionPropagation": "orphan"}}).resolved()
    up = helmargs.upgrade("rel", "/c", "apps", resolved, post_render=[], dry_run=True)
    assert up[up.index("--history-max") + 1] == "2"
    assert {"--cleanup-on-fail", "--no-hooks", "--dry-run=server"} <= set(up)
    assert "--create-namespace" not in up
    down = helmargs.uninstall("rel", "apps", resolved)
    assert down[down.index("--cascade") + 1] == "orphan"
    assert {"--keep-history", "--no-hooks"} <= set(down)
    assert down[down.index("--timeout") + 1] == "10m"


def test_hook_failures_are_told_apart_from_chart_failures() -> None:
    """helm's own wording (v3.22) for hooks that time out or fail, and a render failure."""
    def reason(stderr: str) -> str:
        return helm._translate(pyhelm3.errors.Error(1, b"", stderr.encode()), "release x/y").reason

    assert reason("Error: INSTALLATION FAILED: failed post-install: 1 error occurred:\n"
                  "\t* timed out waiting for the condition\n") == "HookTimeout"
    assert reason("Error: UPGRADE FAILED: pre-upgrade hooks failed: 1 error occurred:\n"
                  "\t* timed out waiting for the condition\n") == "HookTimeout"
    assert reason("Error: INSTALLATION FAILED: failed pre-install: 1 error occurred:\n"
                  "\t* job failed: BackoffLimitExceeded") == "HookFailed"
    assert reason("Error: INSTALLATION FAILED: execution error at (broken/templates/x.yaml:1:4):"
                  " boom") == "ChartRenderFailed"
