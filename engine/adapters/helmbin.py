"""Find the `helm` binary the controller runs, and check it is one we support.

Used at startup by the controller, `flotilla plan` and `flotilla catalog lint`.
The binary comes from `--helm PATH`, else `$FLOTILLA_HELM`, else `helm` on
`PATH` — never from the test-binary builder: a production controller must not
start compiling Kubernetes from Go modules because helm is missing.

Supported: Helm 3.14 up to (not including) 4. Helm 4 changed post-renderers
into plugins, and every install and upgrade post-renders
(`engine.adapters.postrender`), so a Helm 4 binary is refused rather than
failing on the first release.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from engine import errors

SUPPORTED_MIN = (3, 14, 0)
SUPPORTED_BELOW = (4, 0, 0)
SUPPORTED = "Helm >= 3.14, < 4"
_INSTALL = ("install Helm 3 (https://helm.sh/docs/intro/install/) and put it on PATH, "
            "or name it with --helm PATH or FLOTILLA_HELM")
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """`v3.22.0+g1a2b3c4` (what `helm version --template {{.Version}}` prints) → (3, 22, 0)."""
    found = _VERSION.search(text)
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def supported(version: tuple[int, int, int]) -> bool:
    return SUPPORTED_MIN <= version < SUPPORTED_BELOW


def locate(explicit: str | None = None) -> Path:
    """The helm to run: --helm, else $FLOTILLA_HELM, else PATH. Raises HelmNotFound."""
    named = explicit or os.environ.get("FLOTILLA_HELM")
    if named:
        path = Path(named).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
        raise errors.NonRetriableError(
            reason="HelmNotFound", message=f"helm binary {named} is not an executable file; "
            + _INSTALL)
    found = shutil.which("helm")
    if found is None:
        raise errors.NonRetriableError(
            reason="HelmNotFound", message=f"no helm binary on PATH; {_INSTALL}")
    return Path(found).resolve()


def find(explicit: str | None = None) -> Path:
    """`locate`, then check `helm version` is in the supported range. Raises HelmUnsupported."""
    path = locate(explicit)
    try:
        done = subprocess.run([str(path), "version", "--template", "{{.Version}}"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.NonRetriableError(
            reason="HelmUnsupported", message=f"{path} did not run: {exc}; {_INSTALL}") from exc
    version = parse_version(done.stdout) if done.returncode == 0 else None
    if version is None:
        raise errors.NonRetriableError(
            reason="HelmUnsupported",
            message=f"{path} version printed no version (exit {done.returncode}); {_INSTALL}")
    if not supported(version):
        shown = ".".join(str(part) for part in version)
        raise errors.NonRetriableError(
            reason="HelmUnsupported",
            message=f"{path} is Helm {shown}; Flotilla supports {SUPPORTED}: {_INSTALL}")
    return path


def workdir(explicit: str | None = None) -> Path:
    """Where the controller keeps charts, helm's cache and private kubeconfigs.

    --workdir, else $FLOTILLA_WORKDIR, else $XDG_CACHE_HOME/flotilla/controller
    (~/.cache/flotilla/controller). A pod with a read-only root filesystem points
    it at an emptyDir.
    """
    named = explicit or os.environ.get("FLOTILLA_WORKDIR")
    if named:
        return Path(named).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "flotilla" / "controller"
