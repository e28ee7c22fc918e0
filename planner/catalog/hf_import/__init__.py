"""Build a ModelSpec from a Hugging Face config.json (and safetensors headers when present).

Field names follow transformers' configuration classes; multimodal checkpoints nest the
language model under ``text_config``. What differs by model_type (biases, norms, where the
sliding/chunked layers are, the MoE layout) is data: model_types.yaml.
"""

from planner.catalog.hf_import.export import spec_to_config
from planner.catalog.hf_import.load import ImportedModel, load_model_dir
from planner.catalog.hf_import.rules import supported_model_types
from planner.catalog.hf_import.spec import spec_from_config

__all__ = ["ImportedModel", "SUPPORTED_MODEL_TYPES", "spec_from_config", "load_model_dir", "spec_to_config"]

SUPPORTED_MODEL_TYPES = supported_model_types()
