"""Blank out anything token-like before text leaves the process as a message.

Used wherever output we did not write can reach a status, an Event or a log
line: an exec credential plugin's stderr (`engine.adapters.credentials`) and
helm's (`engine.adapters.helm`), which runs the same plugin. Plugins print
what they like when they fail, often the very token they were refused or the
request that carried it, so the rules here aim wide: PEM blocks, JWTs,
`Bearer`/`Basic` values, the value after any key that names a secret, long
opaque runs of token characters, and any secret the caller already knows.
A redacted message loses a little detail; an unredacted one leaks a cluster.
Pure: strings in, strings out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MARK = "[redacted]"

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.DOTALL)
_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+")
# `token: x`, "access_token":"x", password=x, client-key-data: x, X-Api-Key: x, …
_KEYED = re.compile(
    r"(?i)([\w.-]*(?:token|passw(?:or)?d|secret|key-data|keydata|api[-_]?key|"
    r"authorization|cookie)[\w.-]*[\"']?\s*[:=]\s*[\"']?)([^\s\"',;}\]]+)")
# Opaque credentials (cloud access tokens, base64 key material): 32+ token characters with
# both a letter and a digit, not part of a longer word and not an absolute path.
_OPAQUE = re.compile(
    r"(?<![\w/+=-])(?!/)(?=[\w+/=-]*\d)(?=[\w+/=-]*[A-Za-z])[\w+/=-]{32,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every token-like part and every one of `secrets` replaced by a marker."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MARK)
    text = _PEM.sub(MARK, text)
    text = _JWT.sub(MARK, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MARK}", text)
    text = _KEYED.sub(lambda m: m.group(1) + (m.group(2) if m.group(2) == MARK else MARK), text)
    return _OPAQUE.sub(MARK, text)
