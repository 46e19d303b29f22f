"""Find or build the test binaries: etcd, the Kubernetes control plane, kubectl, helm.

Used by `flotilla testbin path`, the dev fleet and the test fixtures. The
envtest convention comes first (`KUBEBUILDER_ASSETS`, `TEST_ASSET_<NAME>`);
otherwise each binary is built once from pinned Go modules fetched through the
Go module proxy, into a cache outside the clone keyed by the pinned versions,
so a warm machine pays nothing.

Three small wrapper Go modules are generated in the cache (one per upstream
project, because their dependency graphs disagree): Kubernetes is required as
`k8s.io/kubernetes` with every staging module replaced by its published
`k8s.io/<name> v0.X.Y` (the list is read from that release's own go.mod).

Builds are serialised across processes by an exclusive `flock` on
`<cache>/build.lock`, so a test run and a benchmark started together never run
two Go builds (on two cores, two cold builds would take twice as long and
could clobber each other's work folders); the second waits and then finds the
binaries ready. Binaries are renamed into place only when complete, so the
lock-free fast path (everything already built) never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.22.0"
GO_PROXY = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0]

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "helm",
)
_KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class TestbinError(RuntimeError):
    """A binary could not be found or built; the message says which and why."""


@dataclass(frozen=True)
class Pins:
    kubernetes: str = KUBERNETES_VERSION
    etcd: str = ETCD_VERSION
    helm: str = HELM_VERSION

    @property
    def key(self) -> str:
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_helm-{self.helm}"


def cache_root() -> Path:
    base = os.environ.get("FLOTILLA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flotilla"
    )
    return Path(base)


def _from_envtest() -> Path | None:
    """Honour KUBEBUILDER_ASSETS / TEST_ASSET_*: link what they name into one folder."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    overrides = {
        name: os.environ.get("TEST_ASSET_" + name.upper().replace("-", "_"))
        for name in BINARIES
    }
    if not assets and not any(overrides.values()):
        return None
    found: dict[str, Path] = {}
    for name in BINARIES:
        override = overrides[name]
        candidate = Path(override) if override else (Path(assets) / name if assets else None)
        if candidate is not None and candidate.is_file():
            found[name] = candidate
        elif shutil.which(name) and name in ("kubectl", "helm"):
            found[name] = Path(shutil.which(name) or name)
    missing = [n for n in BINARIES if n not in found]
    if missing:
        # envtest assets usually lack helm and the controllers: build only those.
        built = ensure_built(only=missing)
        for name in missing:
            found[name] = built / name
    folder = cache_root() / "envtest-links"
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path.resolve())
    return folder


def path() -> Path:
    """The folder holding every binary in BINARIES, building them if needed."""
    envtest = _from_envtest()
    if envtest is not None:
        return envtest
    return ensure_built()


def ensure_built(*, pins: Pins = Pins(), only: list[str] | None = None) -> Path:
    target = cache_root() / "testbin" / pins.key
    work = cache_root() / "gowork" / pins.key

    def build(missing: list[str]) -> None:
        if "etcd" in missing:
            _build_etcd(work / "etcd", target, pins.etcd)
        kube = [n for n in missing if n in _KUBE_COMMANDS]
        if kube:
            _build_kubernetes(work / "kubernetes", target, pins.kubernetes, kube)
        if "helm" in missing:
            _build_helm(work / "helm", target, pins.helm)

    return build_once(target, list(only or BINARIES), build, lock=cache_root() / "build.lock")


def build_once(target: Path, wanted: Sequence[str], build: Callable[[list[str]], None], *,
               lock: Path) -> Path:
    """Call build(missing) under `lock` unless every wanted file is already in target.

    The check is repeated under the lock: whoever waited finds what the other built.
    """
    if not _missing(target, wanted):
        return target  # the common case takes no lock at all
    target.mkdir(parents=True, exist_ok=True)
    with exclusive(lock):
        missing = _missing(target, wanted)
        if missing:
            build(missing)
    return target


def _missing(target: Path, wanted: Sequence[str]) -> list[str]:
    return [n for n in wanted if not (target / n).is_file()]


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock`, saying so once when another process holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    # The kernel drops a flock when its holder exits, so a killed build leaves no stale lock.
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another build of the test binaries to finish ({lock})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log(msg: str) -> None:
    print(f"[testbin] {msg}", file=sys.stderr, flush=True)


def _go_build(cwd: Path, output: Path, flags: str, pkg: str) -> None:
    """`go build` to a temporary name, renamed into place only when complete."""
    partial = output.with_name(f".{output.name}.partial")
    _go(["build", "-trimpath", "-ldflags", flags, "-o", str(partial), pkg], cwd)
    os.replace(partial, output)


def _go(args: list[str], cwd: Path) -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false")
    _log(f"go {' '.join(args[:3])}… in {cwd}")
    proc = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TestbinError(f"`go {' '.join(args)}` failed in {cwd}:\n{proc.stderr[-4000:]}")


def _write_module(work: Path, module: str, requires: dict[str, str], replaces: dict[str, str],
                  imports: list[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    lines = [f"module {module}", "", "go 1.26.0", "", "require ("]
    lines += [f"\t{m} {v}" for m, v in requires.items()]
    lines.append(")")
    if replaces:
        lines.append("replace (")
        lines += [f"\t{m} => {m} {v}" for m, v in replaces.items()]
        lines.append(")")
    (work / "go.mod").write_text("\n".join(lines) + "\n")
    tools = ["//go:build tools", "", "package tools", "", "import ("]
    tools += [f'\t_ "{imp}"' for imp in imports]
    tools.append(")")
    (work / "tools.go").write_text("\n".join(tools) + "\n")


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp:
        data: bytes = resp.read()
    return data.decode()


def staging_modules(kubernetes_version: str) -> list[str]:
    """The staging modules a Kubernetes release replaces with local paths."""
    gomod = _fetch(f"{GO_PROXY}/k8s.io/kubernetes/@v/{kubernetes_version}.mod")
    found = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", gomod, flags=re.M)
    # The sample-* modules are examples nobody imports; the proxy does not serve them.
    return [m for m in found if "/sample-" not in m]


def _build_kubernetes(work: Path, target: Path, version: str, commands: list[str]) -> None:
    staging_version = "v0." + version.removeprefix("v1.")
    replaces = {m: staging_version for m in staging_modules(version)}
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in commands]
    _write_module(work, "flotilla.dev/testbin/kubernetes", {"k8s.io/kubernetes": version},
                  replaces, packages)
    _go(["mod", "tidy"], work)
    major, minor = version.removeprefix("v").split(".")[:2]
    stamp = {
        "gitVersion": version, "gitMajor": major, "gitMinor": minor,
        "gitTreeState": "clean", "gitCommit": "0" * 40, "buildDate": "2026-01-01T00:00:00Z",
    }
    flags = [f"-X {pkg}.{k}={v}" for pkg in ("k8s.io/component-base/version",
                                              "k8s.io/client-go/pkg/version")
             for k, v in stamp.items()]
    for command, pkg in zip(commands, packages, strict=False):
        _log(f"building {command} {version} (a cold build takes minutes)")
        _go_build(work, target / command, " ".join(["-s -w", *flags]), pkg)


def _build_etcd(work: Path, target: Path, version: str) -> None:
    pkg = "go.etcd.io/etcd/server/v3"
    _write_module(work, "flotilla.dev/testbin/etcd", {pkg: version}, {}, [pkg])
    _go(["mod", "tidy"], work)
    _log(f"building etcd {version}")
    _go_build(work, target / "etcd", "-s -w", pkg)


def _build_helm(work: Path, target: Path, version: str) -> None:
    pkg = "helm.sh/helm/v3/cmd/helm"
    _write_module(work, "flotilla.dev/testbin/helm", {"helm.sh/helm/v3": version}, {}, [pkg])
    _go(["mod", "tidy"], work)
    flags = f"-s -w -X helm.sh/helm/v3/internal/version.version={version}" \
            f" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    _log(f"building helm {version}")
    _go_build(work, target / "helm", flags, pkg)
