"""Unit tests for engine.cli: every command reaches its handler; the dev fleet stays unloaded."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine import cli

COMMANDS = [
    ["testbin", "path"],
    ["dev-fleet", "up", "--dir", "d"],
    ["dev-fleet", "down", "--dir", "d"],
    ["dev-fleet", "status", "--dir", "d"],
    ["install", "--kubeconfig", "k"],
    ["register", "--kubeconfig", "k", "--namespace", "n", "--name", "c",
     "--cluster-kubeconfig", "c.kubeconfig"],
    ["controller", "--kubeconfig", "k"],
    ["demo"],
    ["plan", "--kubeconfig", "k", "p"],
    ["rollout", "status", "p", "--kubeconfig", "k"],
    ["rollout", "status", "p", "--watch", "--timeout", "60"],
    ["status"],
    ["status", "p", "-o", "json", "--context", "c"],
    ["why", "cluster-1", "-o", "yaml"],
    ["completion", "bash"],
    ["retry", "p", "--kubeconfig", "k"],
    ["catalog", "lint"],
    ["convert", "-f", "sveltos.yaml"],
]


class TestCommands:
    """Each sub-command parses and names a handler its module defines."""

    @pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
    def test_handler_resolves(self, argv: list[str]) -> None:
        args = cli.parser().parse_args(argv)
        assert isinstance(args.func, cli.Lazy)
        assert callable(args.func.resolve())

    def test_project_folders(self) -> None:
        args = cli.parser().parse_args(["install", "--kubeconfig", "k"])
        assert (cli.ROOT / "engine" / "cli" / "__init__.py").is_file()
        assert args.crds == str(cli.ROOT / "crds")


def test_parsing_loads_no_command_module() -> None:
    """`flotilla --help` and product commands never load the dev fleet or kopf on the way."""
    probe = ("import sys, engine.cli; engine.cli.parser(); "
             "print(sorted(m for m in sys.modules if m.startswith(('engine.', 'kopf'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['engine.api', 'engine.cli', 'engine.errors']"


def test_controller_without_helm_stops_with_one_clear_line() -> None:
    """A missing helm is a startup error naming what to install, before any cluster is touched."""
    done = subprocess.run([sys.executable, "-m", "engine.cli", "controller", "--kubeconfig",
                           "/nonexistent/kubeconfig", "--helm", "/nonexistent/helm"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "flotilla: helm binary /nonexistent/helm is not an executable file; install Helm 3 "
        "(https://helm.sh/docs/intro/install/) and put it on PATH, or name it with --helm PATH "
        "or FLOTILLA_HELM"]
