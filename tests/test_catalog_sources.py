"""The catalogue against its sources: every figure cited, every name unique, published totals reproduced.

Issue 11 point 5. GPUs: each figure an entry sets lists the items of ``source`` that give it
(``figure_sources``). Models: each release cites its own config.json, and each published
parameter count is stated by a source item and reproduced by the formula (planner/footprint.py).
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import pytest

from planner.catalog.citations import cites_config, count_mentions, items_citing_config, items_stating, states_count
from planner.catalog.loading import hardware_catalog, model_catalog
from planner.catalog.names import resolve
from planner.catalog.schemas import GPU_FIGURES
from planner.footprint import parameter_counts

GPUS = list(hardware_catalog())
MODELS = list(model_catalog())  # architecture entries and each of their variants
PUBLISHED = [m for m in MODELS if m.total_params]


def _items(source: str | list[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


# --- GPUs: a source item for every figure -------------------------------------------------------

@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.id)
def test_every_gpu_figure_has_a_source_item(gpu):
    assert gpu.unsourced_figures == [], f"{gpu.id}: figure_sources lacks {gpu.unsourced_figures}"


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.id)
def test_figure_sources_and_weak_figures_name_figures_the_entry_sets(gpu):
    # A citation for a figure the entry leaves empty is left over from an edit (or a typo'd figure).
    unset = {f for f in GPU_FIGURES if getattr(gpu, f) is None}
    assert not unset & set(gpu.figure_sources), f"{gpu.id}: sources listed for unset {unset & set(gpu.figure_sources)}"
    assert not unset & set(gpu.weak_figures), f"{gpu.id}: weak_figures names unset {unset & set(gpu.weak_figures)}"


# --- names: unique across ids and aliases, the way lookup matches them -------------------------

def _lookup_forms(entry) -> set[str]:
    """What a user can type for ``entry``: id, aliases (GPUs: name) and a Hub id's repo name alone."""
    tail = [entry.id.rsplit("/", 1)[-1]] if "/" in entry.id else []
    return {" ".join(n.split()).lower() for n in [*entry.names, *tail]}


def _clashes(entries) -> dict[str, list[str]]:
    owners: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        for name in _lookup_forms(entry):
            owners[name].append(entry.id)
    return {name: ids for name, ids in owners.items() if len(ids) > 1}


@pytest.mark.parametrize("entries", [GPUS, MODELS], ids=["gpus", "models"])
def test_every_name_is_unique_case_and_whitespace_insensitively(entries):
    assert _clashes(entries) == {}


def test_the_uniqueness_check_catches_a_case_and_space_variant():
    class Entry:
        def __init__(self, id, names):
            self.id, self.names = id, [id, *names]

    assert _clashes([Entry("h100-sxm", ["NVIDIA H100"]), Entry("h100-pcie", ["nvidia  h100 "])]) == {
        "nvidia h100": ["h100-sxm", "h100-pcie"]}


@pytest.mark.parametrize("entries", [GPUS, MODELS], ids=["gpus", "models"])
def test_every_name_is_written_as_it_can_be_typed(entries):
    # lookup strips the query and compares lower-cased: a name with outer or doubled blanks never matches.
    odd = [(e.id, n) for e in entries for n in e.names if n != " ".join(n.split())]
    assert odd == []


@pytest.mark.parametrize(("catalog", "what"), [(hardware_catalog, "GPU"), (model_catalog, "model")])
def test_every_name_resolves_to_its_own_entry(catalog, what):
    index = catalog().index
    wrong = [(e.id, n) for e in catalog() for n in e.names if resolve(f"  {n.upper()} ", index, what).id != e.id]
    assert wrong == []


# --- models: config.json and the published counts ----------------------------------------------

@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.id)
def test_every_release_cites_its_own_config_json(model):
    # A variant's source is its own items followed by its entry's, so the entry's config.json
    # (another repo id) does not satisfy this for the variant.
    assert items_citing_config(model.id, _items(model.source)), f"{model.id}: no item cites its config.json"


@pytest.mark.parametrize("model", [m for m in MODELS if m.total_params or m.active_params], ids=lambda m: m.id)
def test_published_counts_are_stated_by_a_source_item(model):
    items = _items(model.source)
    for count in (model.total_params, model.active_params):
        if count:
            assert items_stating(items, count), f"{model.id}: no source item states {count:,}"


@pytest.mark.parametrize("model", PUBLISHED, ids=lambda m: m.id)
def test_total_params_match_published_within_1_percent(model):
    computed = parameter_counts(model).total
    assert computed == pytest.approx(model.total_params, rel=0.01), (computed, model.total_params)


def _active_tolerance(published: int) -> float:
    """Relative tolerance on an active count: 1% for an exact figure, 2% for a rounded one.

    Vendors round active counts to a tenth of a billion (3.3B, 12.9B, 37B), and whether the
    embedding and output head count as active differs between model cards.
    """
    return 0.02 if published % 10**8 == 0 else 0.01


@pytest.mark.parametrize("model", [m for m in MODELS if m.active_params], ids=lambda m: m.id)
def test_active_params_match_published(model):
    computed = parameter_counts(model).active
    assert computed == pytest.approx(model.active_params, rel=_active_tolerance(model.active_params))


@pytest.mark.parametrize("model", [m for m in PUBLISHED if m.is_moe], ids=lambda m: m.id)
def test_every_moe_model_with_a_published_total_has_a_published_active_count(model):
    assert model.active_params is not None


def test_most_models_have_a_published_total():
    assert len(PUBLISHED) >= 0.9 * len(MODELS)


def test_active_tolerance_by_precision_of_the_figure():
    assert _active_tolerance(3_300_000_000) == 0.02  # Qwen3-30B-A3B card: "3.3B activated"
    assert _active_tolerance(5_133_074_496) == 0.01  # an exact count


# --- the citation helpers ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "count"), [
    ("safetensors.total 6,738,546,688", 6_738_546_688),  # full digits with commas
    ("'togethercomputer/CodeLlama-7b': 6738546688", 6_738_546_688),  # and without
    ("model page '6.74B params'", 6_738_546_688),  # 6.735e9 .. 6.745e9
    ("'671B total parameters'", 671_000_000_000),
    ("37B activated", 37_400_000_000),  # 36.5e9 .. 37.5e9
    ("3.3B activated", 3_350_000_000),  # the upper edge of 3.25e9 .. 3.35e9
    ("about 1.5 billion parameters", 1_543_714_304),
    ("a LLaMA-like model with only 68M parameters", 68_000_000),
])
def test_states_count_accepts_digits_and_rounded_figures(text, count):
    assert states_count(text, count)


@pytest.mark.parametrize(("text", "count"), [
    ("model page '6.74B params'", 6_760_000_000),  # outside the rounding of 6.74B
    ("37B activated", 37_550_000_000),
    ("6,738,546,688 parameters", 6_738_546_687),  # full digits are exact
    ("base model JackFram/llama-68m (LLaMA-68M: hidden 768)", 68_000_000),  # names, not statements
    ("https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json", 30_000_000_000),  # a link
    ("Qwen3-30B-A3B activates A3B", 3_000_000_000),
    ("ratio 1.5 of the baseline", 1),  # a decimal without a scale is no count
    ("12,34 and 5", 1234),  # not a digit-grouped number
])
def test_states_count_refuses_other_numbers_names_and_links(text, count):
    assert not states_count(text, count)


def test_count_mentions_carry_their_rounding():
    assert count_mentions("46.7B total, 46,702,792,704 exactly") == [
        (Fraction(46_700_000_000), Fraction(50_000_000)), (Fraction(46_702_792_704), Fraction(0))]


def test_items_stating_gives_1_based_positions():
    items = ["https://huggingface.co/x/y/blob/main/config.json", "card: 8.03B parameters", "8,030,261,248"]
    assert items_stating(items, 8_030_261_248) == [2, 3]


@pytest.mark.parametrize("text", [
    "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json",
    "https://huggingface.co/Qwen/Qwen3-30B-A3B/resolve/main/config.json",
    "https://huggingface.co/qwen/qwen3-30b-a3b/blob/0123abcd/config.json (pinned revision)",
    "Qwen/Qwen3-30B-A3B config.json, read through a mirror of the gated repo",
])
def test_cites_config_accepts_the_hub_url_and_a_named_equivalent(text):
    assert cites_config("Qwen/Qwen3-30B-A3B", text)


@pytest.mark.parametrize("text", [
    "https://huggingface.co/Qwen/Qwen3-30B-A3B-Base/blob/main/config.json",  # another repo, same prefix
    "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/README.md",
    "Qwen/Qwen3-30B-A3B model card",
    "Qwen/Qwen3-30B-A3B-Base config.json",
])
def test_cites_config_refuses_other_repos_and_files(text):
    assert not cites_config("Qwen/Qwen3-30B-A3B", text)
