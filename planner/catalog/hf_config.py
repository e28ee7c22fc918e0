"""Build a ModelSpec from a Hugging Face config.json: the public names of planner.catalog.hf_import."""

from planner.catalog.hf_import import (
    SUPPORTED_MODEL_TYPES,
    ImportedModel,
    load_model_dir,
    spec_from_config,
    spec_to_config,
)

__all__ = ["ImportedModel", "SUPPORTED_MODEL_TYPES", "spec_from_config", "load_model_dir", "spec_to_config"]
