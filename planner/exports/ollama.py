"""Ollama: no draft-model speculative decoding, so no export; the refusal names the closest server."""

from __future__ import annotations

from typing import NoReturn

from planner.errors import SpecplanError

__all__ = ["SERVER", "refuse"]

SERVER = "ollama"


def refuse() -> NoReturn:
    """Ollama cannot run a draft model (shared/research/servers.md section 5)."""
    raise SpecplanError(
        "Ollama has no draft-model speculative decoding (ollama/ollama#5800 is still open; PR #8134 was closed "
        "unmerged); the closest alternative is llama.cpp's llama-server, which runs the same GGUF files with a "
        "draft model: use --server llamacpp"
    )
