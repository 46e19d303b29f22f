"""Helm post-renderer (`python -m engine.adapters.postrender`): CRDs kept, profile transforms run.

Helm (v3) runs the executable named by `--post-renderer` with every rendered
manifest of an install or upgrade on stdin and deploys what it prints; hooks
are not post-rendered. `flags()` gives the helm arguments that run this module
with the controller's own interpreter, so no extra executable has to be on
PATH. Two jobs, each optional:

* annotate the chart's CRDs `helm.sh/resource-policy: keep`
  (`engine.crdguard.keep_crds`; see there why), unless `--no-keep-crds`;
* `--transform FILE`: the profile's patches, extraLabels and extraAnnotations
  (`engine.patches.Transform`, as JSON in FILE, which the caller writes in
  its private work directory and removes after helm returns).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from engine import crdguard, errors, patches

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def flags(*, keep_crds: bool = True, transform: Path | None = None) -> list[str]:
    """`helm install/upgrade` arguments that post-render through this module ([] for none)."""
    if not keep_crds and transform is None:
        return []
    args = ["-m", __name__]
    if not keep_crds:
        args.append("--no-keep-crds")
    if transform is not None:
        args += ["--transform", str(transform)]
    out = ["--post-renderer", sys.executable]
    for arg in args:
        out += ["--post-renderer-args", arg]
    return out


def render(text: str, *, keep_crds: bool, transform: patches.Transform | None) -> str:
    """The post-rendered stream."""
    if keep_crds:
        text = crdguard.keep_crds(text)
    if transform is None or transform.empty:
        return text
    docs = [d for d in yaml.load_all(text, Loader=_Loader) if isinstance(d, dict)]
    # JSON documents are valid YAML and need no quoting decisions.
    return "".join(f"---\n{json.dumps(d, default=str, separators=(',', ':'))}\n"
                   for d in transform.apply(docs))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    keep = "--no-keep-crds" not in args
    transform = None
    if "--transform" in args:
        path = Path(args[args.index("--transform") + 1])
        transform = patches.Transform.from_json(json.loads(path.read_text()))
    text = sys.stdin.read()
    try:
        sys.stdout.write(render(text, keep_crds=keep, transform=transform))
    except errors.SpecError as exc:  # helm shows stderr and fails the operation
        print(f"flotilla post-renderer: {exc}", file=sys.stderr)  # it names the field
        return 1
    except Exception as exc:
        print(f"flotilla post-renderer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
