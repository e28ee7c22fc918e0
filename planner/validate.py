"""The validation entry points under their earlier module name (the code lives in planner.validation)."""

from planner.validation import (
    Check, Skip, SpecCheck, Targets, ValidationReport, load_measurements, load_speculative_more, median_abs_error,
    summarize, validate,
)
from planner.validation.names import source_gpu as _gpu
from planner.validation.names import source_model as _model

__all__ = ["Check", "Skip", "SpecCheck", "Targets", "ValidationReport", "load_measurements", "load_speculative_more",
           "median_abs_error", "summarize", "validate", "_gpu", "_model"]
