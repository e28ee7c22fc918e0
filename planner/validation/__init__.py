"""`specplan validate`: the cost model, draft loops and priors against published measurements.

rows (load and check both public files), names (sources' model/GPU/engine names), decode
(section A tokens/s), cases (speculative rows as estimate flags), speculative (pricing through
planner.plan.estimate), report (every check, medians per engine, issue 9's targets).
"""

from planner.validation.cases import MeasuredAcceptance, Skip, SpecCase
from planner.validation.decode import Check
from planner.validation.report import Targets, ValidationReport, median_abs_error, summarize, validate
from planner.validation.rows import load_measurements, load_speculative_more
from planner.validation.speculative import Priced, SpecCheck, measured_acceptance_flags

__all__ = ["Check", "MeasuredAcceptance", "Priced", "Skip", "SpecCase", "SpecCheck", "Targets", "ValidationReport",
           "load_measurements", "load_speculative_more", "measured_acceptance_flags", "median_abs_error", "summarize",
           "validate"]
