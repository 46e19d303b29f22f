"""HTTP facts the API client acts on: how long a throttled answer asks us to wait, which proxy,
how an apply body is written.

Used by `engine.adapters.kube.Client`. Pure functions of headers, URLs and the
environment, kept apart so they are tested on plain data.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import ipaddress
import json
import re
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

THROTTLE_RETRIES = 3       # 429 / 503+Retry-After answers waited out per request
MAX_RETRY_AFTER = 10.0     # seconds; a longer Retry-After is cut to this
# In the standard library, not in its type stubs.
_bypass: Callable[[str, Any], bool] = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009


def retry_after(status: int, headers: Mapping[str, str], attempt: int) -> float | None:
    """Seconds to wait before retrying a throttled answer; None when it is an error now."""
    value = headers.get("Retry-After")
    if attempt >= THROTTLE_RETRIES or status not in (429, 503) or (status == 503
                                                                   and value is None):
        return None
    seconds = 1.0
    if value is not None:
        try:
            seconds = float(value)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                when = email.utils.parsedate_to_datetime(value)
                seconds = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return min(max(seconds, 0.5), MAX_RETRY_AFTER)


def env_proxy(server: str) -> str | None:
    """HTTPS_PROXY/NO_PROXY as Go (and so helm) reads them; loopback is never proxied."""
    parts = urlsplit(server)
    host = parts.hostname or ""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return None
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(parts.scheme)
    if not url or host == "localhost" or _bypass(host, proxies):
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


# Characters YAML does not take raw (outside its printable set, or NEL, a YAML line
# break) that JSON with ensure_ascii=False leaves raw; json.dumps escapes C0 controls.
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\ufffe\uffff]")


def yaml_safe_json(body: Any) -> str:
    """JSON that a YAML parser reads back unchanged (server-side apply bodies are YAML).

    `json.dumps` writes a character beyond the BMP (an emoji, say) as a surrogate pair
    of \\u escapes, which JSON allows and YAML refuses ("found invalid Unicode character
    escape code": the API server answered 400 to any such value). Written raw, as
    UTF-8, such characters are fine; only the few outside YAML's printable set are escaped.
    """
    text = json.dumps(body, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
