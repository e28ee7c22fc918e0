"""An offline Hugging Face cache holding one config.json per model id, from specplan's catalogue.

The servers' config classes read each model's config.json (vLLM ModelConfig for the target
and the draft, SGLang's ServerArgs checks). With HF_HUB_OFFLINE=1 and HF_HUB_CACHE pointing
here, huggingface_hub answers those reads from this folder, so the servers resolve the very
ids the exports name and nothing is downloaded. The files are written from the catalogue
entry (planner.catalog.hf_config.spec_to_config) plus what spec_to_config leaves out and the
servers need: the ``architectures`` class name and, for a pre-quantized checkpoint, its
``quantization_config``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from planner.catalog.hf_config import spec_to_config
from planner.catalog.lookup import find_model

__all__ = ["ARCHITECTURE_CLASSES", "QUANTIZATION_CONFIGS", "add_model", "add_head", "add_config"]

# transformers' model class for each model_type specplan knows (config.json "architectures").
ARCHITECTURE_CLASSES = {
    "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM",
    "qwen2": "Qwen2ForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM", "qwen3": "Qwen3ForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM", "gemma": "GemmaForCausalLM", "gemma2": "Gemma2ForCausalLM",
    "phi3": "Phi3ForCausalLM", "deepseek_v2": "DeepseekV2ForCausalLM", "deepseek_v3": "DeepseekV3ForCausalLM",
}
# quantization_config of a pre-quantized checkpoint, as AutoAWQ / GPTQModel / llm-compressor write it.
QUANTIZATION_CONFIGS: dict[str, dict[str, Any]] = {
    "int4-awq": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
    "int4-gptq": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True},
    "fp8": {"quant_method": "fp8", "activation_scheme": "dynamic"},
}


def _config(catalogue_name: str, precision: str | None) -> dict[str, Any]:
    spec = find_model(catalogue_name).spec
    cfg = {"architectures": [ARCHITECTURE_CLASSES[spec.architecture]], **spec_to_config(spec)}
    if precision is not None:
        cfg["quantization_config"] = QUANTIZATION_CONFIGS[precision]
    return cfg


def add_model(cache: Path, repo_id: str, catalogue_name: str | None = None, precision: str | None = None) -> Path:
    """Write ``repo_id``'s config.json into the cache (from ``catalogue_name``, default repo_id).

    ``precision`` marks a pre-quantized checkpoint (a key of QUANTIZATION_CONFIGS). Returns
    the snapshot folder. The layout is huggingface_hub's: models--ORG--NAME/refs/main holds
    the commit, snapshots/COMMIT/ the files.
    """
    return add_config(cache, repo_id, _config(catalogue_name or repo_id, precision))


def add_head(cache: Path, repo_id: str, target: str, overrides: dict[str, Any]) -> Path:
    """Write a head's config.json: the target's catalogue config with ``overrides`` (an EAGLE head's
    one decoder layer at the target's hidden size, its architecture class, a reduced draft vocabulary)."""
    return add_config(cache, repo_id, {**_config(target, None), **overrides})


def add_config(cache: Path, repo_id: str, config: dict[str, Any]) -> Path:
    """Write ``config`` as ``repo_id``'s config.json into the cache; the snapshot folder."""
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    commit = hashlib.sha1(text.encode()).hexdigest()  # any 40-hex name; this one changes with the content
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text(text, encoding="utf-8")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot
