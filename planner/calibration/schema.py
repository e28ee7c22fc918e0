"""The calibration file: a versioned record of what was measured and what was fitted.

One file holds the device identity, the raw measurements (pass timings, speculative
rounds, or server counters) and the fitted parameters, so a plan can be re-made and
the fit re-checked later. Files are YAML (or JSON, which YAML reads).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from planner.atomic import write_text_atomic
from planner.calibration.schema_loads import LoadLevel, ServerRun
from planner.catalog.loading import format_validation_error
from planner.catalog.schemas import Frozen
from planner.errors import SpecplanError
from planner.inputs import check_strings, read_yaml
from planner.proposers.methods import Method

__all__ = [
    "SCHEMA_VERSION",
    "DeviceIdentity",
    "ModelIdentity",
    "TimingPoint",
    "RoundsRecord",
    "AcceptanceCounters",
    "FittedTiming",
    "FittedAcceptance",
    "FittedVerify",
    "PromptCounts",
    "TreeShape",
    "CalibrationFile",
    "LoadLevel",
    "ServerRun",
    "read_calibration",
    "write_calibration",
    "now_iso",
]

SCHEMA_VERSION = 1
K_LIMIT = 64  # planner.speedup.K_MAX: the longest draft any engine (and the probe) runs
_Count = Annotated[int, Field(ge=0)]
_Rate = Annotated[float, Field(ge=0, le=1)]


class _Record(Frozen):
    """A calibration record: frozen, no unknown keys, and no NaN or infinity in any number."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def now_iso() -> str:
    """Current UTC time, ISO 8601, seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class DeviceIdentity(_Record):
    """The accelerator a calibration was measured on."""

    name: str = Field(description="device name as the driver reports it (NVML, torch)")
    catalog_id: str | None = Field(None, description="matching hardware_db id, if any")
    count: int = Field(1, ge=1)
    memory_gib: float | None = Field(None, gt=0)
    driver: str | None = None
    backend: Literal["cuda", "rocm", "mps", "cpu", "unknown"] = "cuda"


class ModelIdentity(_Record):
    """A model as measured: its catalogue id or path, and the format it ran in."""

    id: str
    precision: str | None = None
    total_params: int | None = Field(None, gt=0)


class TimingPoint(_Record):
    """Repeated wall-clock times of one forward pass shape."""

    role: Literal["target", "draft"]
    batch: int = Field(ge=1, le=1_000_000)
    context: int = Field(ge=0, le=100_000_000, description="tokens already cached")
    new_tokens: int = Field(ge=1, le=K_LIMIT + 1, description="1 for decode, k+1 for verification")
    seconds: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)
    # llama-bench's test kind: its pp1 and tg are both one-token passes, but pp1 at a depth follows a
    # K/V state restore (slower), so the decode figure is read from tg (None: not llama-bench).
    bench_test: Literal["tg", "pp"] | None = None

    @property
    def median_s(self) -> float:
        """Median of the repeats, s."""
        s = sorted(self.seconds)
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


class RoundsRecord(_Record):
    """Accepted / proposed draft tokens per speculative round, for one decoding mode."""

    mode: Literal["greedy", "sampling"]
    temperature: float = Field(ge=0)
    k: int = Field(ge=1, le=K_LIMIT)
    accepted: list[_Count]
    proposed: list[_Count]

    @model_validator(mode="after")
    def _consistent(self) -> RoundsRecord:
        if len(self.accepted) != len(self.proposed):
            raise ValueError("accepted and proposed must have one entry per round")
        if any(a < 0 or a > p for a, p in zip(self.accepted, self.proposed)):
            raise ValueError("a round accepted more tokens than it proposed")
        return self


class AcceptanceCounters(_Record):
    """Acceptance counters read from a server over a window (deltas of cumulative counters)."""

    num_drafts: int | None = Field(None, ge=0, description="verification steps that had a draft")
    num_draft_tokens: int = Field(ge=0)
    num_accepted_tokens: int = Field(ge=0, description="accepted draft tokens, bonus excluded")
    accepted_per_position: list[_Count] | None = Field(
        None, description="drafts whose first i+1 tokens were all accepted (vLLM per_pos)"
    )
    k: int | None = Field(None, ge=1, le=K_LIMIT)
    window_s: float | None = Field(None, ge=0)
    # n-gram / suffix lookups propose nothing when no match is found; servers count only the steps
    # that had a draft, so the steps without one come from other counters (absent: not known).
    steps_without_draft: int | None = Field(None, ge=0, description="decode steps that proposed no draft token")


class FittedTiming(_Record):
    """Least-squares fit of one model's pass times: t = bytes / (bw * eta_mem) + overhead."""

    role: Literal["target", "draft"]
    eta_mem: float = Field(gt=0)
    overhead_s: float = Field(ge=0)
    residual_rms_s: float = Field(ge=0)
    max_rel_residual: float = Field(ge=0)
    points: int = Field(ge=1)
    # The host CPU's bandwidth is measured again in every run (planner.calibration.host), so eta alone
    # would move with that measurement; with the figure the fit divided by, bw * eta is kept instead.
    bandwidth_gb_s: float | None = Field(None, gt=0, description="peak bandwidth the fit divided by, GB/s")


class TreeShape(_Record):
    """The token tree a server verified each step: SGLang's (--speculative-num-steps, -eagle-topk, -num-draft-tokens).

    A chain is topk 1 with num_draft_tokens = num_steps + 1; alpha fitted under a tree is the top-1
    per-depth acceptance of planner.trees (rank profile from rank_profiles.yaml), not a chain alpha.
    """

    num_steps: int = Field(ge=1, le=K_LIMIT, description="draft depth, tokens")
    topk: int = Field(ge=1, le=K_LIMIT, description="candidates kept per node")
    num_draft_tokens: int = Field(ge=2, le=4096, description="tree nodes verified per step, the root included")

    @property
    def is_tree(self) -> bool:
        """True when the shape branches (topk > 1)."""
        return self.topk > 1


class FittedAcceptance(_Record):
    """Maximum-likelihood alpha with its interval, and the per-position view."""

    mode: Literal["greedy", "sampling", "server"]
    alpha: float = Field(ge=0, le=1)
    alpha_low: float = Field(ge=0, le=1)
    alpha_high: float = Field(ge=0, le=1)
    k: int | None = Field(None, ge=1, le=K_LIMIT)
    rounds: int | None = Field(None, ge=0)
    per_position: list[_Rate] = Field(default_factory=list, description="P(accept i | 1..i-1 accepted)")
    geometric_p_value: float | None = Field(None, ge=0, le=1)
    decays_with_position: bool = False
    # The engine's draft loop the acceptance was measured under (planner.draftloop): alpha above is
    # the loop model's per-token (unfiltered) acceptance when these are set.
    p_min: float | None = Field(None, ge=0, le=1, description="confidence threshold the server ran with (llama.cpp p-min)")
    drafted_per_round: float | None = Field(None, ge=0, le=K_LIMIT, description="mean drafted tokens per round")
    kappa: float | None = Field(None, gt=0, description="confidence concentration fitted with alpha")
    # What the server printed, for the plan's --mean-accepted-length path and for trees (absent in older files).
    mean_accepted_length: float | None = Field(
        None, ge=1, le=4096, description="tokens committed per verify step, the target's own token included")
    tree: TreeShape | None = Field(None, description="the tree alpha was inverted under (None: a chain of k)")


class FittedVerify(_Record):
    """The verify curve of one model at one cached length: r(n) = t(pass over n tokens) / t(pass over 1).

    Fitted non-decreasing in n (planner.calibration.verify_curve.fit_verify_curve); the plan prices a
    verify pass over k + 1 tokens as the calibrated decode time x r(k + 1) when this file applies.
    """

    role: Literal["target", "draft"] = "target"
    batch: int = Field(1, ge=1, le=1_000_000, description="sequences per pass")
    context: int = Field(ge=0, le=100_000_000, description="tokens already cached when the passes were timed")
    new_tokens: list[Annotated[int, Field(ge=1, le=K_LIMIT + 1)]] = Field(min_length=2, description="measured n, ascending, from 1")
    ratio: list[Annotated[float, Field(ge=1)]] = Field(min_length=2, description="fitted t(n)/t(1) per n, dimensionless")
    measured_ratio: list[Annotated[float, Field(gt=0)]] = Field(min_length=2, description="median t(n)/t(1) as measured")
    max_rel_residual: float = Field(ge=0, description="largest |t_measured - t_fit| / t_measured")
    source: str = Field(description="what was timed (llama-bench pp at depth, hf probe time_pass)")

    @model_validator(mode="after")
    def _consistent(self) -> FittedVerify:
        n = self.new_tokens
        if not (len(n) == len(self.ratio) == len(self.measured_ratio)):
            raise ValueError("new_tokens, ratio and measured_ratio need one entry per n")
        if n[0] != 1 or any(b <= a for a, b in zip(n, n[1:])):
            raise ValueError("new_tokens must ascend from 1")
        if any(b < a for a, b in zip(self.ratio, self.ratio[1:])):
            raise ValueError("the fitted ratio must not decrease with n")
        return self


class PromptCounts(_Record):
    """One prompt's speculative run (llama-speculative): what it committed, drafted, accepted, and how fast."""

    prompt: int = Field(ge=0, description="index into the probe's prompts")
    predicted: _Count = Field(description="tokens committed (n_predict)")
    drafted: _Count
    accepted: _Count
    target_steps: _Count = Field(description="target passes: n_predict - n_accept (steps without a draft included)")
    decode_s: float | None = Field(None, ge=0, description="the tool's own decode wall time, s")

    @property
    def tokens_per_s(self) -> float | None:
        """The run's decode speed, tokens/s (as llama-speculative prints it)."""
        return self.predicted / self.decode_s if self.decode_s else None


class CalibrationFile(_Record):
    """Everything one calibration measured and fitted."""

    schema_version: Literal[1] = SCHEMA_VERSION
    created_at: str = Field(default_factory=now_iso)
    source: Literal["probe", "vllm-metrics", "sglang-metrics", "llamacpp", "server-probe", "trtllm-stats"]
    partial: bool = False
    partial_reason: str | None = None
    device: DeviceIdentity | None = None
    engine: str | None = None
    target: ModelIdentity
    draft: ModelIdentity | None = None
    # The proposal method measured and its head (Hub id as typed or absolute folder; the target's id
    # for MTP; None for n-gram / suffix). Files written before methods existed read as draft models.
    method: Method = "draft"
    head: str | None = None
    timings: list[TimingPoint] = Field(default_factory=list)
    rounds: list[RoundsRecord] = Field(default_factory=list)
    counters: AcceptanceCounters | None = None
    fitted_timing: list[FittedTiming] = Field(default_factory=list)
    fitted_acceptance: list[FittedAcceptance] = Field(default_factory=list)
    # Absent from files written before the verify curve was fitted: they read as "no curve".
    fitted_verify: list[FittedVerify] = Field(default_factory=list)
    per_prompt: list[PromptCounts] = Field(default_factory=list)
    # probe --server (planner.calibration.server_probe): the server and one record per concurrency level
    server: ServerRun | None = None
    loads: list[LoadLevel] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _method_consistent(self) -> CalibrationFile:
        if self.method != "draft" and self.draft is not None:
            raise ValueError(f"method {self.method} runs no draft model: draft must be absent")
        if self.method in ("draft", "ngram", "suffix") and self.head is not None:
            raise ValueError(f"method {self.method} runs no head: head must be absent")
        return self


def read_calibration(path: str | Path) -> CalibrationFile:
    """Read and validate a calibration file; errors name the file and the field."""
    p = Path(path)
    doc = read_yaml(p, "--calibration")
    if not isinstance(doc, dict):
        raise SpecplanError(f"{p}: expected a mapping (a specplan calibration file)")
    check_strings(doc, str(p))
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SpecplanError(f"{p}: field schema_version: {version!r} is not supported (expected {SCHEMA_VERSION})")
    try:
        return CalibrationFile.model_validate(doc)
    except ValidationError as err:
        raise SpecplanError(format_validation_error(str(p), "calibration", err)) from None


def write_calibration(cal: CalibrationFile, path: str | Path, force: bool = True) -> Path:
    """Write atomically as YAML (``.json`` suffix: JSON)."""
    data = cal.model_dump(mode="json")
    if str(path).endswith(".json"):
        text = json.dumps(data, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    return write_text_atomic(path, text, force=force)
