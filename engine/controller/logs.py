"""The controller's log: one line per event, with a level and the object it concerns.

Used by `main` (`--log-format text|json`, `--log-level`). Text lines read
`2026-12-02T01:02:03Z INFO flotilla.controller [ns/name] message`; JSON lines
carry `ts`, `level`, `logger`, `object` and `msg`, for log pipelines. The
object comes from kopf's per-object logger (`k8s_ref`) or from our own
`extra={"object": "ns/name"}`.

Third-party libraries are kept at WARNING: cel-python logs every compiled
program (its transpiled Python, on every CEL compile) at INFO, pyhelm3 logs
helm's expected "release not found" answers as failures, and kopf's INFO
lines restate what our own reconcilers log better. At `--log-level debug`
they speak again.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
QUIET = {"celpy": logging.WARNING, "pyhelm3": logging.CRITICAL, "kopf": logging.WARNING,
         "aiohttp": logging.WARNING, "asyncio": logging.WARNING, "urllib3": logging.WARNING}


def _object(record: logging.LogRecord) -> str:
    found = getattr(record, "object", None)
    if found:
        return str(found)
    ref: Any = getattr(record, "k8s_ref", None)  # kopf's ObjectLogger adds it
    if isinstance(ref, dict) and ref.get("name"):
        ns = ref.get("namespace")
        return f"{ns}/{ref['name']}" if ns else str(ref["name"])
    return ""


def _stamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
        f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = _object(record)
        line = f"{_stamp(record)} {record.levelname} {record.name}" + (
            f" [{obj}]" if obj else "") + f" {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"ts": _stamp(record), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        obj = _object(record)
        if obj:
            doc["object"] = obj
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure(log_format: str = "text", level: str = "info") -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    if log_format not in ("text", "json"):
        raise ValueError(f"--log-format must be text or json, not {log_format!r}")
    if level not in LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LEVELS)}, not {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.getLevelName(level.upper()))
    debug = level == "debug"
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(logging.DEBUG if debug else quiet)
    # kopf installs handlers on its own loggers in kopf.configure(); route them through ours.
    for name in ("kopf", "kopf.objects"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
