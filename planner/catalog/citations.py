"""Which items of a catalogue entry's ``source`` state a figure: a parameter count, a config.json.

The catalogue test (tests/test_catalog_sources.py) and ``specplan models --sources`` read
sources with these rules, so the check and what a user is shown agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

__all__ = ["count_mentions", "states_count", "items_stating", "cites_config", "items_citing_config",
           "config_json_url"]

# Links and repository paths are where a number is not a statement (product ids, commits, repo
# names such as Qwen3-30B-A3B): they are removed before numbers are read.
_LINK = re.compile(r"(?:https?://|github:)\S+")
# A count: full digits (commas optional), or a rounded figure with a scale. The scale letters are
# upper-case only and a number glued to a name by '-', '/' or '.' is not read: 'llama-68m',
# 'Scout-17B', 'A3B' name a model, they do not state its size.
_MENTION = re.compile(
    r"(?<![\w.,\-/])(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(?P<frac>\d+))?"
    r"(?:\s?(?P<letter>[KMBT])(?![A-Za-z])|\s(?P<word>(?i:thousand|million|billion|trillion))\b)?"
)
_SCALE = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12,
          "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}


def count_mentions(text: str) -> list[tuple[Fraction, Fraction]]:
    """The parameter counts ``text`` states, as (count, half-width of its rounding), both in parameters.

    "6,738,546,688" and "6738546688" are exact (half-width 0); "6.74B" is 6.74e9 +- 0.005e9;
    "671B" is 671e9 +- 0.5e9. A decimal without a scale ("1.5") is not a count.
    """
    out = []
    for m in _MENTION.finditer(_LINK.sub(" ", text)):
        scale_name = m["letter"] or (m["word"] or "").lower()
        frac = m["frac"] or ""
        if not scale_name and frac:
            continue
        scale = _SCALE.get(scale_name, 1)
        value = Fraction(m["int"].replace(",", "") + (f".{frac}" if frac else "")) * scale
        half = Fraction(scale, 2 * 10 ** len(frac)) if scale_name else Fraction(0)
        out.append((value, half))
    return out


def states_count(text: str, count: int) -> bool:
    """True when ``text`` gives ``count`` parameters in full digits or rounded ("6.74B" for 6,738,546,688)."""
    return any(abs(value - count) <= half for value, half in count_mentions(text))


def items_stating(items: Sequence[str], count: int) -> list[int]:
    """1-based positions of the ``items`` that state ``count`` (see states_count)."""
    return [i for i, text in enumerate(items, start=1) if states_count(text, count)]


def config_json_url(model_id: str) -> str:
    """The Hub page of the config.json of repo ``model_id`` (what a source item cites)."""
    return f"https://huggingface.co/{model_id}/blob/main/config.json"


def cites_config(model_id: str, text: str) -> bool:
    """True when ``text`` cites the config.json of Hub repo ``model_id``.

    Either its Hub URL (blob or resolve, any revision, case-insensitive as the Hub is), or a
    named equivalent: the repo id itself (not as part of a longer id) and "config.json" in one
    item, as for a gated repo read through a mirror.
    """
    repo = re.escape(model_id)
    if re.search(rf"huggingface\.co/{repo}/(?:blob|resolve)/[^/\s]+/config\.json", text, re.IGNORECASE):
        return True
    named = re.search(rf"(?<![\w.\-/]){repo}(?![\w.\-/])", _LINK.sub(" ", text), re.IGNORECASE)
    return named is not None and "config.json" in text.lower()


def items_citing_config(model_id: str, items: Sequence[str]) -> list[int]:
    """1-based positions of the ``items`` that cite ``model_id``'s config.json (see cites_config)."""
    return [i for i, text in enumerate(items, start=1) if cites_config(model_id, text)]
