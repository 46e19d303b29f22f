"""A kustomizationRef's ConfigMap/Secret turned into the directory tree `kubectl kustomize` builds.

Used by the summary reconciler (`controller.desired`) before it hands the tree
to `adapters.kustomizebin`, and by the revision store, which records binary
entries with `BINARY_PREFIX`. A ConfigMap or Secret holds a kustomization in
one of two ways, as in Sveltos:

- a tarball (`.tar`, `.tar.gz`/`.tgz`) in one key — a ConfigMap's
  `binaryData`, or a Secret's data — unpacked as the tree;
- files as data keys (`kustomization.yaml`, `deployment.yaml`, …), one flat
  directory, since a ConfigMap key cannot hold a `/`.

`spec.kustomizationRefs[].path` then names the directory of the tree to build
and `targetNamespace` wraps it in a kustomization that sets the namespace, so
kustomize itself decides which kinds are namespaced. Unpacking refuses
absolute paths, `..`, links and devices, and caps sizes: the tree comes from a
user's ConfigMap and the controller must not write outside its scratch
directory. Pure: bytes in, a mapping of relative paths to bytes out.
"""

from __future__ import annotations

import base64
import io
import posixpath
import tarfile
from collections.abc import Mapping
from typing import Any

import yaml

from engine import errors, render

# A snapshot key for binary content (ConfigMap binaryData, non-UTF-8 Secret data): a `/`
# never appears in a real ConfigMap/Secret key, so the two cannot collide.
BINARY_PREFIX = "binaryData/"
WRAPPER_DIR = "_flotilla_wrapper"
MAX_FILES = 1000
MAX_BYTES = 16 * 1024 * 1024  # unpacked; a kustomization is text, not a dataset
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_GZIP_MAGIC = b"\x1f\x8b"


def tree(data: Mapping[str, str], *, field: str) -> dict[str, bytes]:
    """The files the referenced object holds, by relative POSIX path."""
    files: dict[str, bytes] = {}
    for key in sorted(data):
        binary = key.startswith(BINARY_PREFIX)
        name = key[len(BINARY_PREFIX):] if binary else key
        raw = base64.b64decode(data[key]) if binary else data[key].encode()
        if name.endswith(_TAR_SUFFIXES) or raw[:2] == _GZIP_MAGIC:
            for path, content in _untar(raw, field=f"{field} key {name}").items():
                _add(files, path, content, field=field)
        else:
            _add(files, _safe(name, field=field), raw, field=field)
    if not files:
        raise errors.SpecError("holds no files: put a kustomization in its data (one key per "
                               "file) or a tarball in one key", field=field,
                               reason="InvalidKustomization")
    return files


def build_dir(files: Mapping[str, bytes], *, path: str, target_namespace: str,
              field: str) -> tuple[dict[str, bytes], str]:
    """(files to write, directory to build) for `path` and `targetNamespace`.

    A directory without a kustomization.yaml gets one listing its YAML files, as Sveltos
    does; `targetNamespace` wraps the directory in a kustomization that sets it.
    """
    bare = path.strip("/")
    where = "." if bare in ("", ".") else _safe(bare, field=f"{field}.path")
    out = dict(files)
    if not any(posixpath.normpath(posixpath.join(where, name)) in files
               for name in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
        inside = sorted(posixpath.relpath(p, where) for p in files
                        if posixpath.dirname(p) == ("" if where == "." else where)
                        and p.endswith((".yaml", ".yml", ".json")))
        if not inside:
            raise errors.SpecError(
                f"no kustomization.yaml and no YAML files in {where!r} of the referenced "
                f"object (it holds {', '.join(sorted(files)[:5])}"
                f"{' …' if len(files) > 5 else ''})", field=f"{field}.path",
                reason="InvalidKustomization")
        generated = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": inside}
        out[posixpath.normpath(posixpath.join(where, "kustomization.yaml"))] = \
            yaml.safe_dump(generated).encode()
    if not target_namespace:
        return out, where
    wrapped = {f"src/{p}": content for p, content in out.items()}
    wrapper = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
               "namespace": target_namespace,
               "resources": ["../src" if where == "." else f"../src/{where}"]}
    wrapped[f"{WRAPPER_DIR}/kustomization.yaml"] = yaml.safe_dump(wrapper).encode()
    return wrapped, WRAPPER_DIR


def objects(output: str, *, field: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` printed, checked like policyRef manifests."""
    return render.load_manifests({"kustomize": output}, field=field)


def digest(data: Mapping[str, str], path: str, target_namespace: str) -> str:
    """What a build depends on; equal digests build equal output (the adapter caches by it)."""
    return render.stable_hash(dict(data), path, target_namespace)


def _untar(raw: bytes, *, field: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as archive:
            for member in archive:
                if member.isdir():
                    continue
                if not member.isfile():  # links and devices could point outside the tree
                    raise errors.SpecError(f"{member.name} is not a regular file (links are "
                                           "not unpacked)", field=field,
                                           reason="InvalidKustomization")
                total += member.size
                if total > MAX_BYTES or len(out) >= MAX_FILES:
                    raise errors.SpecError(f"unpacks to more than {MAX_BYTES} bytes or "
                                           f"{MAX_FILES} files", field=field,
                                           reason="InvalidKustomization")
                extracted = archive.extractfile(member)
                if extracted is not None:
                    out[_safe(member.name, field=field)] = extracted.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise errors.SpecError(f"is not a readable tarball: {exc}", field=field,
                               reason="InvalidKustomization") from exc
    return out


def _safe(name: str, *, field: str) -> str:
    normal = posixpath.normpath(name)
    if name.startswith("/") or normal == ".." or normal.startswith("../") or normal == ".":
        raise errors.SpecError(f"{name!r} is not a relative path inside the kustomization",
                               field=field, reason="InvalidKustomization")
    return normal


def _add(files: dict[str, bytes], path: str, content: bytes, *, field: str) -> None:
    if len(files) >= MAX_FILES or sum(map(len, files.values())) + len(content) > MAX_BYTES:
        raise errors.SpecError(f"holds more than {MAX_FILES} files or {MAX_BYTES} bytes",
                               field=field, reason="InvalidKustomization")
    files[path] = content
