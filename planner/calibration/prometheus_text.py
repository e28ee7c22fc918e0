"""Prometheus text exposition (format 0.0.4), as vLLM and SGLang serve it on ``/metrics``.

Shared by the server readers (``vllm_metrics``, ``sglang_metrics``): the samples of the
families a reader wants, values checked to be ASCII numbers, counts checked to be whole
and in range. Parsing is prometheus_client's own parser, the library both servers render with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from planner.calibration.acceptance_stats import MAX_COUNT, one_line
from planner.errors import SpecplanError
from planner.inputs import shown

__all__ = ["Sample", "metric_samples", "check_ascii_values", "count_value"]

Sample = tuple[str, dict[str, str], float]  # (name without _total, labels, value)


def metric_samples(text: str, keep: Callable[[str], bool], origin: str) -> list[Sample]:
    """(name without ``_total``, labels, value) for every sample whose name ``keep`` accepts.

    ``keep`` sees the sample name as written (``..._total`` included); ``_created`` samples
    are dropped before it is asked.
    """
    from prometheus_client.parser import text_string_to_metric_families

    check_ascii_values(text, origin)
    out = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                # Text format 0.0.4 exposes each counter as <name>_total plus a <name>_created
                # gauge holding its creation time; the parser names the family without _total.
                if name.endswith("_created") or not keep(name):
                    continue
                base = name[: -len("_total")] if name.endswith("_total") else name
                out.append((base, dict(sample.labels), float(sample.value)))
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on malformed lines
        raise SpecplanError(f"{origin}: not Prometheus text: {one_line(exc)}") from None
    return out


_SAMPLE_LINE = re.compile(r"\s*[^\s{#]+(?:\{.*\})?\s+(.*)")


def check_ascii_values(text: str, origin: str) -> None:
    """Refuse sample values written in non-ASCII digits: Python's float() would read "\u0663" as 3."""
    for n, line in enumerate(text.splitlines(), start=1):
        if line.isascii() or line.lstrip().startswith("#"):
            continue
        match = _SAMPLE_LINE.match(line)
        if match and not match.group(1).isascii():
            raise SpecplanError(f"{origin}: line {n}: value {shown(match.group(1), 40)} is not an ASCII number")


def count_value(value: float, name: str, origin: str) -> int:
    """A counter value as a whole count; refuses NaN, infinities, negatives and counts over MAX_COUNT."""
    if not math.isfinite(value) or value < 0 or value > MAX_COUNT:
        raise SpecplanError(f"{origin}: {name} has value {value!r}; expected a count from 0 to 2^53")
    return int(round(value))
