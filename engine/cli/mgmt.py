"""The management cluster as the read commands reach it, with kubectl's conventions.

Used by `status`, `why`, `plan` and `rollout` (and so by `kubectl flotilla …`).
Which kubeconfig, as kubectl decides: `--kubeconfig FILE`, else the files
`KUBECONFIG` lists (merged: the first file to name a cluster, user or context
wins, and the first `current-context` set wins), else `~/.kube/config`;
`--context NAME` picks a context in it. Also here: `-o json|yaml` output,
the one formatting step every read command shares.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from engine import errors
from engine.adapters import kube, kubeconfig

# Fields of a kubeconfig that name files, relative to the file they are in.
_PATH_FIELDS = {"clusters": ("cluster", ("certificate-authority",)),
                "users": ("user", ("client-certificate", "client-key", "tokenFile"))}


def _files(explicit: str | None, environ: Mapping[str, str]) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    listed = [Path(p).expanduser() for p in environ.get("KUBECONFIG", "").split(os.pathsep)
              if p]
    if listed:
        return [p for p in listed if p.is_file()] or listed[:1]
    return [Path(environ.get("HOME") or Path.home()) / ".kube" / "config"]


def _absolute(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """File references made absolute, so stanzas from several files can sit in one."""
    for section, (inner, keys) in _PATH_FIELDS.items():
        for entry in doc.get(section) or []:
            node = (entry or {}).get(inner) if isinstance(entry, dict) else None
            if not isinstance(node, dict):
                continue
            for key in keys:
                if node.get(key) and not os.path.isabs(str(node[key])):
                    node[key] = str(base / str(node[key]))
            command = str((node.get("exec") or {}).get("command") or "")
            if os.sep in command and not os.path.isabs(command):
                node["exec"]["command"] = str(base / command)
    return doc


def _merge(paths: list[Path]) -> str:
    """kubectl's merge of several kubeconfig files (first name wins, first current-context)."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [],
                              "users": [], "contexts": []}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise errors.NonRetriableError(f"cannot read kubeconfig {path} ({exc.strerror})",
                                           reason="InvalidKubeconfig") from None
        except yaml.YAMLError:
            raise errors.NonRetriableError(f"kubeconfig {path} is not valid YAML",
                                           reason="InvalidKubeconfig") from None
        if not isinstance(doc, dict):
            continue
        doc = _absolute(doc, path.resolve().parent)
        for section in ("clusters", "users", "contexts"):
            known = {e.get("name") for e in merged[section]}
            merged[section] += [e for e in doc.get(section) or []
                                if isinstance(e, dict) and e.get("name") not in known]
        if not merged.get("current-context") and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return yaml.safe_dump(merged)


def config(path: str | None, context: str | None,
           environ: Mapping[str, str] | None = None) -> kubeconfig.KubeConfig:
    """The management cluster's connection facts, found as kubectl finds them."""
    files = _files(path, os.environ if environ is None else environ)
    if len(files) == 1:
        if not files[0].is_file():
            raise errors.NonRetriableError(
                f"no kubeconfig: {files[0]} does not exist (use --kubeconfig or KUBECONFIG)",
                reason="InvalidKubeconfig")
        return kubeconfig.load(files[0], context=context)
    return kubeconfig.parse(_merge(files), base=Path.cwd(), context=context)


def config_for(args: argparse.Namespace) -> kubeconfig.KubeConfig:
    """`config` from a command's `--kubeconfig`/`--context` (either may be absent)."""
    return config(getattr(args, "kubeconfig", None), getattr(args, "context", None))


def client(args: argparse.Namespace) -> kube.Client:
    """A client for the management cluster named by `--kubeconfig`/`--context` (or defaults)."""
    return kube.Client(config_for(args), name="management")


def emit(data: Any, output: str | None, human: str) -> str:
    """`human` by default; the same facts as JSON or YAML for scripts."""
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    if output == "yaml":
        return yaml.safe_dump(data, sort_keys=False).rstrip("\n")
    return human
