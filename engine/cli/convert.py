"""`flotilla convert -f FILE…`: Sveltos YAML in, Flotilla YAML out (docs/sveltos.md).

Used by the command line. Reads every file (`-` is stdin) as multi-document
YAML, converts them together (so a profile's valuesFrom and a SveltosCluster's
kubeconfig Secret are found wherever they are given), writes the Flotilla
YAML to stdout and each finding — what could not be carried over, what to
review — to stderr as well as in comments at the top of the output. Exits 1
only when an input cannot be read or is not YAML; findings are not errors.
The conversion itself is `engine.convert` (pure).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from engine import convert


def convert_command(args: argparse.Namespace) -> int:
    documents: list[Any] = []
    for name in args.file:
        try:
            text = sys.stdin.read() if name == "-" else _read(name)
            documents += list(yaml.safe_load_all(text))
        except OSError as error:
            print(f"flotilla convert: cannot read {name}: {error.strerror or error}",
                  file=sys.stderr)
            return 1
        except UnicodeDecodeError:
            print(f"flotilla convert: cannot read {name}: not UTF-8 text", file=sys.stderr)
            return 1
        except yaml.YAMLError as error:
            # The mark says where; the problem text never quotes Secret data at length.
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "not valid YAML"
            print(f"flotilla convert: {name}{where}: {problem}", file=sys.stderr)
            return 1
    result = convert.convert(documents)
    for finding in result.findings:
        print(f"flotilla convert: {finding.line()}", file=sys.stderr)
    sys.stdout.write(result.text())
    return 0


def _read(name: str) -> str:
    with open(name, encoding="utf-8") as handle:
        return handle.read()
