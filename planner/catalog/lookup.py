"""Resolve what the user typed (catalogue name or local path) into catalogue entries.

A model keeps the name the user gave it (issue 8): a Hub id exactly as typed, a short
catalogue alias as the catalogue's Hub id (an alias is not a repo a server can load), a
local folder as its absolute path. That name becomes the spec's ``id``, so every table,
JSON document, report, export and calibration file prints it; ``catalog_id`` keeps the
catalogue release the figures came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planner.catalog.hf_config import load_model_dir
from planner.catalog.loading import hardware_catalog, model_catalog
from planner.catalog.names import resolve
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.catalog.tokenizers import LLAMACPP_MAX_VOCAB_DIFFERENCE, TokenizerMatch, match_tokenizers
from planner.errors import ConfigImportError, IncompatiblePairError, SpecplanError
from planner.inputs import MODEL_NAME_CATEGORIES, first_bad_character

_TOKENIZER_CONFIG_CAP_BYTES = 8 * 1024 * 1024  # tokenizer_config.json with its template is well under this

__all__ = ["ResolvedModel", "find_gpu", "find_model", "model_name", "check_tokenizers", "looks_like_path", "expand_path",
           "UAG_ENGINE", "UAG_MARK"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model footprint plus where it came from and the precision its checkpoint implies."""

    spec: ModelSpec  # spec.id is the model's name as given (see model_name)
    origin: str  # "catalog" or the absolute path it was read from

    @property
    def checkpoint_precision(self) -> str | None:
        """The format the checkpoint stores its weights in (quantization_config, or the catalogue's
        ``weight_format``: gpt-oss's MXFP4 experts); None for plain 16-bit checkpoints."""
        return self.spec.weight_format

    @property
    def name(self) -> str:
        """What every output calls this model."""
        return self.spec.id


def find_gpu(name: str) -> GpuSpec:
    """A catalogue accelerator by id, name or alias (case-insensitive)."""
    cat = hardware_catalog()
    return resolve(name, cat.index, "GPU")


def looks_like_path(name: str) -> bool:
    """True when ``name`` is meant as a local folder or config.json rather than a catalogue name."""
    if name.startswith((".", "/", "~")) or name.endswith(".json"):
        return True
    try:
        return Path(name).expanduser().exists()
    except (OSError, ValueError, RuntimeError):  # too long for a path, a NUL byte, ~nosuchuser: no folder
        return False


def expand_path(name: str) -> Path:
    """``name`` as a path with ``~`` / ``~user`` expanded; an unknown user is bad input, not a crash."""
    try:
        return Path(name).expanduser()
    except RuntimeError as exc:  # pathlib: "Could not determine home directory."
        raise SpecplanError(f"{name!r}: cannot expand '~' in this path: {exc}") from None


def _refuse_control_characters(name: str) -> None:
    """Names are printed into tables, YAML and shell scripts: a newline or escape in one is refused."""
    if (bad := first_bad_character(name, MODEL_NAME_CATEGORIES)) is not None:
        raise SpecplanError(f"model name {name!r} contains the control character {name[bad[0]]!r}; "
                            "give the name without it")


def _local_folder(name: str) -> Path:
    """The absolute path a local model name points at: the folder, also for its config.json."""
    path = expand_path(name).resolve()
    return path.parent if path.name == "config.json" and path.is_file() else path


def model_name(typed: str) -> str:
    """The name every output gives the model the user typed as ``typed``.

    A local folder or config.json: the folder's absolute path. An ``owner/name`` Hub id:
    exactly as typed (only surrounding blanks dropped). A short catalogue alias
    (``llama-3.1-70b-instruct``): the catalogue release's Hub id. Anything else as typed.
    """
    name = typed.strip()
    _refuse_control_characters(name)
    if looks_like_path(name):
        return str(_local_folder(name))
    if "/" in name:
        return name
    entry = model_catalog().index.get(name.lower())
    return entry.id if entry is not None else name


def _local_kind(path: Path) -> str:
    """"instruct" for a checkpoint that ships a chat template (chat fine-tunes do), else "base"."""
    folder = path if path.is_dir() else path.parent
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return "instruct"
    config = folder / "tokenizer_config.json"
    if not config.is_file():  # also keeps FIFOs and devices unread
        return "base"
    try:
        with config.open("rb") as fh:
            head = fh.read(_TOKENIZER_CONFIG_CAP_BYTES)
    except OSError:
        return "base"
    return "instruct" if b'"chat_template"' in head else "base"


def _architecture_key(m: ModelSpec) -> tuple:
    return (m.architecture, m.num_layers, m.hidden_size, m.num_attention_heads, m.num_kv_heads,
            m.head_dim, m.intermediate_size, m.vocab_size, m.moe, m.mla)


def _adopt_catalog_identity(spec: ModelSpec) -> ModelSpec:
    """Give a config-only import the tokenizer identity of the catalogue entry it matches.

    A checkpoint with the same repo id, or with exactly the architecture of one
    catalogue entry, is that model (or a fine-tune of it), and fine-tunes keep the
    tokenizer. A tokenizer.json hash from disk is kept as it is.
    """
    cat = model_catalog()
    entry = cat.index.get(spec.id.lower())
    same_repo = entry is not None
    if entry is None:
        # Architecture entries only: a release that renamed its tokenizer (R1 distills) is a
        # fine-tune of its own, not evidence about what this checkpoint's tokenizer is.
        matches = [m for m in cat if m.variant_of is None and _architecture_key(m) == _architecture_key(spec)]
        entry = matches[0] if len({m.tokenizer for m in matches}) == 1 else None
    if entry is None:
        return spec
    update = {"family": entry.family, "generation": entry.generation, "variant_of": entry.architecture_id,
              "kind": entry.kind if same_repo else spec.kind}
    if spec.tokenizer.startswith("unknown:"):
        update |= {"tokenizer": entry.tokenizer, "tokenizer_vocab_size": entry.tokenizer_vocab_size,
                   "tokenizer_base": entry.tokenizer_base, "tokenizer_base_vocab_size": entry.tokenizer_base_vocab_size}
    return spec.model_copy(update=update)


def find_model(name: str) -> ResolvedModel:
    """A model from the catalogue, or from a local folder / config.json when given a path.

    The spec's ``id`` is ``model_name(name)``; a catalogue hit also records the release
    in ``catalog_id``, a local folder matched to a catalogue architecture in ``variant_of``.
    """
    shown = model_name(name)
    if looks_like_path(name.strip()):
        try:
            imported = load_model_dir(expand_path(name.strip()))
        except OSError as exc:  # a path the system cannot even look at (too long, no permission)
            raise ConfigImportError(f"{shown}: cannot read the model folder: {exc.strerror or exc}") from None
        spec = imported.spec.model_copy(update={"kind": _local_kind(Path(shown))})
        spec = _adopt_catalog_identity(spec).model_copy(update={"id": shown, "aliases": []})
        return ResolvedModel(spec=spec, origin=shown)
    entry = resolve(name, model_catalog().index, "model")
    return ResolvedModel(spec=entry.model_copy(update={"id": shown}), origin="catalog")


# transformers' universal assisted generation: a draft with any tokenizer (transformers >= 4.46,
# generate(assistant_model=..., tokenizer=..., assistant_tokenizer=...); candidate_generator.py
# AssistedCandidateGeneratorDifferentTokenizers @ 00a11b6a0745b442473aef0221e098d022b8158c).
UAG_ENGINE = "hf"
UAG_MARK = "universal assisted generation"  # in the warning a plan keeps: exports find the mode by it
_UAG_NOTE = (f"planned as transformers {UAG_MARK} (transformers >= 4.46: generate(assistant_model=..., "
             "tokenizer=..., assistant_tokenizer=...)): each round the draft's tokens are decoded to text and "
             "re-tokenised for the target and back, greedy decoding only (sampling needs 4.50's UAG-TLI)")


def _tokenizer_reason(target: ModelSpec, draft: ModelSpec, match: TokenizerMatch) -> str:
    if match.relation == "unverified":
        return f"cannot verify that draft {draft.id} and target {target.id} share a tokenizer (no tokenizer.json)"
    why = f": {match.detail}" if match.detail else ""
    return (f"draft {draft.id} uses tokenizer {draft.tokenizer!r} ({draft.tokenizer_vocab_size} tokens) "
            f"but target {target.id} uses {target.tokenizer!r} ({target.tokenizer_vocab_size} tokens){why}")


def _appended_note(target: ModelSpec, draft: ModelSpec, match: TokenizerMatch, engine: str | None) -> str:
    """The pair shares ids; llama.cpp refuses vocabularies more than 128 tokens apart."""
    extra = match.appended_draft or match.appended_target
    longer = draft.id if match.appended_draft else target.id
    note = (f"draft {draft.id} and target {target.id} share token ids 0-{(match.shared_ids or 1) - 1}; "
            f"{longer} appends {extra} token(s) after them (special/infill tokens), so the pair is valid")
    if engine == "llamacpp" and extra > LLAMACPP_MAX_VOCAB_DIFFERENCE:
        raise IncompatiblePairError(
            f"{note} in principle, but llama.cpp refuses vocabularies more than {LLAMACPP_MAX_VOCAB_DIFFERENCE} "
            f"tokens apart (SPEC_VOCAB_MAX_SIZE_DIFFERENCE, common/speculative.cpp): {extra} here")
    return note


def check_tokenizers(target: ModelSpec, draft: ModelSpec, allow_mismatch: bool = False,
                     engine: str | None = None) -> str | None:
    """Refuse a draft whose token ids mean other tokens than the target's; return a warning when it runs anyway.

    Judged from the token -> id maps (planner.catalog.tokenizers): the same map, or one map plus
    appended tokens, is a valid pair; padded embedding sizes never matter (Qwen2.5 0.5B vs 72B).
    Another tokenizer runs on ``engine`` "hf" as universal assisted generation (no flag needed);
    elsewhere it is refused unless ``allow_mismatch``.
    """
    match = match_tokenizers(target, draft)
    if match.relation == "same":
        return None
    if match.relation == "appended":
        return _appended_note(target, draft, match, engine)
    reason = _tokenizer_reason(target, draft, match)
    if engine == UAG_ENGINE:
        return f"{reason}; {_UAG_NOTE}"
    if not allow_mismatch:
        raise IncompatiblePairError(f"{reason}; token ids would not match (--engine hf runs such a pair as universal "
                                    "assisted generation; --allow-tokenizer-mismatch overrides)")
    return f"{reason}; proceeding because --allow-tokenizer-mismatch was given"
