"""Helm post-renderer: `python -m engine.adapters.postrender` annotates CRDs `keep`.

Helm (v3) runs the executable named by `--post-renderer` with every rendered
manifest of an install or upgrade on stdin and deploys what it prints; hooks
are not post-rendered. `flags()` gives the helm arguments that run this module
with the controller's own interpreter, so no extra executable has to be on
PATH. The transform itself is `engine.crdguard.keep_crds`; see there why.
"""

from __future__ import annotations

import sys

from engine import crdguard


def flags() -> list[str]:
    """`helm install/upgrade` arguments that post-render through this module."""
    return ["--post-renderer", sys.executable,
            "--post-renderer-args", "-m", "--post-renderer-args", __name__]


def main() -> int:
    text = sys.stdin.read()
    try:
        sys.stdout.write(crdguard.keep_crds(text))
    except Exception as exc:  # helm shows stderr and fails the operation
        print(f"flotilla post-renderer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
