"""The one check of a URL the user typed (--server, --baseline-url, --vllm-metrics, --sglang-metrics)."""

from __future__ import annotations

import urllib.parse

from planner.errors import SpecplanError
from planner.inputs import shown

__all__ = ["is_url", "check_http_url"]


def is_url(text: str) -> bool:
    """True when the text is meant as a URL: it has "scheme://" ("C:\\x" parses with scheme "c" and is a path)."""
    return "://" in text


def check_http_url(url: str, flag: str, *, base: bool = False) -> urllib.parse.SplitResult:
    """The parts of an http(s) URL with a host; anything else is one line, exit 2.

    ``base`` also refuses ?query and #fragment (the probe appends its own paths to a base URL).
    """
    text = url.strip()
    # http.client sends the URL as written: spaces or non-ASCII would fail deep inside it, not here.
    if any(ch.isspace() or not (" " < ch < "\x7f") for ch in text):
        raise SpecplanError(f"{flag} {shown(url, 80)}: a URL is printable ASCII without spaces (percent-encode the rest)")
    try:
        parts = urllib.parse.urlsplit(text)
        host = parts.hostname  # raises ValueError on an unclosed [IPv6] bracket
    except ValueError as err:
        raise SpecplanError(f"{flag} {shown(url, 80)}: not a URL ({err})") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise SpecplanError(f"{flag} {shown(url, 80)}: expected an http:// or https:// URL with a host "
                            "(for example http://127.0.0.1:8000)")
    if base and (parts.query or parts.fragment):
        raise SpecplanError(f"{flag} {shown(url, 80)}: give the server's base URL, without ?query or #fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number from 0 to 65535
    except ValueError:
        raise SpecplanError(f"{flag} {shown(url, 80)}: the port is not a number from 0 to 65535") from None
    return parts
