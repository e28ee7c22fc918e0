"""Hugging Face TGI: speculation only with Medusa heads or n-grams, so no draft-model export."""

from __future__ import annotations

from typing import NoReturn

from planner.errors import SpecplanError

__all__ = ["SERVER", "refuse"]

SERVER = "tgi"


def refuse() -> NoReturn:
    """TGI has no separate draft-model option (shared/research/servers.md section 5)."""
    raise SpecplanError(
        "TGI has no draft-model speculative decoding (it speculates only with Medusa heads or n-grams, "
        "`--speculate N`); the closest alternatives that run a draft model are vLLM and SGLang: use "
        "--server vllm or --server sglang"
    )
