"""Run `kubectl kustomize` on a kustomization tree; find the kubectl binary that does it.

Used by the summary reconciler (`controller.desired`) for `kustomizationRefs`.
The binary comes from `$FLOTILLA_KUBECTL` (which `flotilla controller
--kubectl PATH` sets), else `kubectl` on `PATH` — never from the test-binary
builder, as for helm (`adapters.helmbin`). It is looked up when a profile
first needs it, so a controller whose profiles use no kustomization runs
without kubectl; a profile that does gets `KubectlNotFound` naming what to
install. Builds run in a private scratch directory with a time bound and are
cached by the digest of their inputs (the same revision on 100 clusters
builds once).
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from engine import errors
from engine.model import limits

ENV = "FLOTILLA_KUBECTL"
TIMEOUT = 60.0
_INSTALL = ("install kubectl (https://kubernetes.io/docs/tasks/tools/) and put it on PATH, "
            "or name it with --kubectl PATH or FLOTILLA_KUBECTL")
_CACHE: collections.OrderedDict[str, str] = collections.OrderedDict()
_CACHE_SIZE = 64


def locate() -> Path:
    """The kubectl to run: $FLOTILLA_KUBECTL, else PATH. Raises KubectlNotFound."""
    named = os.environ.get(ENV)
    if named:
        path = Path(named).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
        raise errors.NonRetriableError(
            reason="KubectlNotFound",
            message=f"kubectl binary {named} is not an executable file; {_INSTALL}")
    found = shutil.which("kubectl")
    if found is None:
        raise errors.NonRetriableError(reason="KubectlNotFound",
                                       message=f"no kubectl binary on PATH; {_INSTALL}")
    return Path(found).resolve()


async def build(files: Mapping[str, bytes], directory: str, *, digest: str, field: str,
                secret: bool) -> str:
    """The YAML `kubectl kustomize` prints for `directory` of `files`.

    A failed build is a SpecError naming `field`; when the kustomization came from a
    Secret its output is withheld from the message (it may quote the Secret's content).
    """
    if digest in _CACHE:
        _CACHE.move_to_end(digest)
        return _CACHE[digest]
    kubectl = locate()
    with tempfile.TemporaryDirectory(prefix="flotilla-kustomize-") as scratch:
        root = Path(scratch)
        for rel, content in files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        proc = await asyncio.create_subprocess_exec(
            str(kubectl), "kustomize", str(root / directory),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, cwd=scratch)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise errors.SpecError(f"kubectl kustomize took longer than {TIMEOUT:.0f} s",
                                   field=field, reason="KustomizeFailed") from exc
    if proc.returncode != 0:
        detail = ("output withheld: the kustomization is in a Secret" if secret
                  else err.decode(errors="replace").replace(scratch, "").strip())
        raise errors.SpecError(f"kubectl kustomize failed (exit {proc.returncode}): "
                               f"{limits.shorten(detail, 2000)}", field=field,
                               reason="KustomizeFailed")
    text = out.decode()
    _CACHE[digest] = text
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return text
