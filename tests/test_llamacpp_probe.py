"""The llama.cpp engine probe without the tools: the llama-bench JSON parser on a saved real output, bounded runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from planner.calibration.llamacpp_probe import LlamaProbeConfig, bench_precision, parse_bench_json, run_llamacpp_probe
from planner.cli import main
from planner.errors import SpecplanError

# llama-bench -m target-Q8_0.gguf -p 1,2,3,4,5 -n 16 -d 0,128 -r 2 -t 2 -o json, the b11312 CPU build of
# .ci/llamacpp_build.sh on the tiny pair of tests/real_llamacpp/models.py (stdout as printed).
SAVED = Path(__file__).parent / "data" / "llamabench_tiny_target.json"


def test_parser_reads_the_saved_real_output() -> None:
    text = SAVED.read_text(encoding="utf-8")
    points = parse_bench_json(text, "target")
    assert len(points) == 12
    # pp1..pp5 and tg16 at depths 0 and 128; tg and pp1 are both one-token passes
    assert sorted((p.new_tokens, p.context) for p in points) == sorted(
        [(n, d) for n in range(1, 6) for d in (0, 128)] + [(1, 0), (1, 128)])
    # tg16 at depth 0: 1766.5 tokens/s on average -> about 0.57 ms per decode pass
    decode = [p for p in points if p.context == 0 and p.new_tokens == 1]
    assert any(abs(p.median_s - 1 / 1766.5) / (1 / 1766.5) < 0.05 for p in decode)
    # pp5 at depth 128: one batch of 5 tokens at 1745.4 tokens/s -> 2.86 ms
    pp5 = next(p for p in points if p.context == 128 and p.new_tokens == 5)
    assert pp5.median_s == pytest.approx(5 / 1745.4, rel=0.05)
    assert all(p.role == "target" for p in points)
    assert bench_precision(text) == "q8_0"


@pytest.mark.parametrize("text", ["", "not json", "[]", '[{"n_prompt": 1}]', '[{"n_prompt": 1, "n_gen": 0, "samples_ns": [0]}]'])
def test_parser_refuses_in_one_line(text: str) -> None:
    with pytest.raises(SpecplanError) as err:
        parse_bench_json(text, "target")
    assert "\n" not in str(err.value)


def _bin(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("llama-bench", "llama-speculative"):
        (folder / tool).write_text("#!/bin/sh\nexit 1\n")
        (folder / tool).chmod(0o755)
    for f in ("t.gguf", "d.gguf"):
        (tmp_path / f).write_bytes(b"GGUF")
    return folder


def _argv(tmp_path: Path, folder: Path) -> list[str]:
    return ["probe", "--engine", "llamacpp", "--llama-bin", str(folder), "--target", "meta-llama/Llama-3.1-8B",
            "--draft", "meta-llama/Llama-3.2-1B", "--target-gguf", str(tmp_path / "t.gguf"),
            "--draft-gguf", str(tmp_path / "d.gguf"), "--gpu", "cpu", "-o", str(tmp_path / "c.yaml")]


def test_missing_tool_is_exit_3(runner, tmp_path: Path) -> None:
    folder = _bin(tmp_path)
    (folder / "llama-speculative").unlink()
    result = runner.invoke(main, _argv(tmp_path, folder))
    assert result.exit_code == 3 and "llama-speculative" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_failing_tool_is_exit_2(runner, tmp_path: Path) -> None:
    result = runner.invoke(main, _argv(tmp_path, _bin(tmp_path)))
    assert result.exit_code == 2 and "llama-bench" in result.stderr and "exit 1" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_subprocess_timeouts_come_from_the_budget_and_a_spent_budget_writes_a_partial_file(tmp_path: Path) -> None:
    folder = _bin(tmp_path)
    saved = SAVED.read_text(encoding="utf-8")
    limits: list[float] = []
    now = [0.0]

    def run(argv, timeout, **_):
        limits.append(timeout)
        now[0] += 50.0  # each tool run takes 50 s of the injected clock
        return subprocess.CompletedProcess(argv, 0, saved, "")

    cfg = LlamaProbeConfig(str(folder), "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B", str(tmp_path / "t.gguf"),
                           str(tmp_path / "d.gguf"), budget_s=100.0, run=run, clock=lambda: now[0])
    cal = run_llamacpp_probe(cfg, tmp_path / "c.yaml")
    assert limits[0] == pytest.approx(30.0)  # half of the bench share (60 %) of 100 s for the target
    assert all(t <= 100.0 for t in limits)
    assert cal.partial and "budget" in (cal.partial_reason or "")
    assert cal.timings and cal.engine == "llamacpp" and (tmp_path / "c.yaml").is_file()


# The closing lines of llama-speculative (examples/speculative/speculative.cpp, b11312), per run.
def _spec_text(predicted: int, drafted: int, accepted: int, seconds: float = 0.05) -> str:
    return (f"encoded   12 tokens in    0.010 seconds, speed: 1200.000 t/s\n"
            f"decoded {predicted:4d} tokens in {seconds:8.3f} seconds, speed: {predicted / seconds:8.3f} t/s\n\n"
            f"n_draft   = 4\nn_predict = {predicted}\nn_drafted = {drafted}\nn_accept  = {accepted}\n"
            f"accept    = {100 * accepted / drafted:.3f}%\n")


def _fake_tools(tmp_path: Path, spec_runs: list[str], step_s: float = 1.0):
    saved = SAVED.read_text(encoding="utf-8")
    now = [0.0]
    prompts_seen: list[str] = []

    def run(argv, timeout, **_):
        now[0] += step_s
        if argv[0].endswith("llama-bench"):
            return subprocess.CompletedProcess(argv, 0, saved, "")
        prompts_seen.append(argv[argv.index("-p") + 1])
        return subprocess.CompletedProcess(argv, 0, "", spec_runs[min(len(prompts_seen), len(spec_runs)) - 1])

    return run, now, prompts_seen


def test_every_prompt_runs_and_the_counts_are_pooled(tmp_path: Path) -> None:
    runs = [_spec_text(32, 40, 20), _spec_text(32, 36, 24), _spec_text(32, 30, 10, seconds=0.1)]
    run, now, seen = _fake_tools(tmp_path, runs)
    cfg = LlamaProbeConfig(str(_bin(tmp_path)), "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B",
                           str(tmp_path / "t.gguf"), str(tmp_path / "d.gguf"), budget_s=1000.0, run=run,
                           clock=lambda: now[0], prompts=("a", "b", "c"))
    cal = run_llamacpp_probe(cfg, tmp_path / "c.yaml")
    assert seen == ["a", "b", "c"] and not cal.partial
    assert [(p.prompt, p.drafted, p.accepted, p.target_steps) for p in cal.per_prompt] == [
        (0, 40, 20, 12), (1, 36, 24, 8), (2, 30, 10, 22)]
    assert cal.counters.num_draft_tokens == 106 and cal.counters.num_accepted_tokens == 54
    assert cal.per_prompt[2].tokens_per_s == pytest.approx(320.0)
    assert any("96 tokens in 0.200 s" in n for n in cal.notes)  # pooled: 3 x 32 tokens over 0.05 + 0.05 + 0.1 s
    assert cal.fitted_verify and {c.context for c in cal.fitted_verify} == {0, 128}


def test_a_budget_that_ends_between_prompts_keeps_what_was_measured(tmp_path: Path) -> None:
    run, now, seen = _fake_tools(tmp_path, [_spec_text(32, 40, 20)], step_s=40.0)
    cfg = LlamaProbeConfig(str(_bin(tmp_path)), "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B",
                           str(tmp_path / "t.gguf"), str(tmp_path / "d.gguf"), budget_s=158.0, run=run,
                           clock=lambda: now[0], prompts=("a", "b", "c", "d"))
    cal = run_llamacpp_probe(cfg, tmp_path / "c.yaml")
    # two llama-bench runs (80 s), then prompts at 80 and 120 s; at 160 s the 158 s budget is spent
    assert seen == ["a", "b"] and cal.partial and "after 2 of 4 prompts" in cal.partial_reason
    assert len(cal.per_prompt) == 2 and cal.counters.num_draft_tokens == 80 and cal.fitted_acceptance


def test_a_later_prompt_without_stats_is_noted_and_skipped(tmp_path: Path) -> None:
    run, now, seen = _fake_tools(tmp_path, [_spec_text(32, 40, 20), "no stats", "no stats", "no stats",
                                            _spec_text(32, 20, 10)])
    cfg = LlamaProbeConfig(str(_bin(tmp_path)), "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B",
                           str(tmp_path / "t.gguf"), str(tmp_path / "d.gguf"), budget_s=1000.0, run=run,
                           clock=lambda: now[0], prompts=("a", "b", "c"))
    cal = run_llamacpp_probe(cfg, tmp_path / "c.yaml")
    assert seen == ["a", "b", "b", "b", "c"] and [p.prompt for p in cal.per_prompt] == [0, 2]
    assert sum("prompt 2 run" in n for n in cal.notes) == 3


@pytest.mark.parametrize("flag", [["--random-weights"], ["--trust-remote-code"], ["--device", "cpu"],
                                  ["--dtype", "fp32"], ["--batch-sizes", "1"], ["--temperature", "0"]])
def test_hf_only_flags_are_refused_with_llamacpp(runner, tmp_path: Path, flag: list[str]) -> None:
    result = runner.invoke(main, [*_argv(tmp_path, _bin(tmp_path)), *flag])
    assert result.exit_code == 2 and flag[0] in result.stderr and "--engine hf" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "c.yaml").exists()


@pytest.mark.parametrize("flag", [["--llama-bin", "."], ["--target-gguf", "t.gguf"], ["--draft-gguf", "d.gguf"],
                                  ["--threads", "2"]])
def test_llamacpp_only_flags_are_refused_with_hf(runner, tmp_path: Path, flag: list[str]) -> None:
    result = runner.invoke(main, ["probe", "--target", "meta-llama/Llama-3.1-8B", "--draft", "meta-llama/Llama-3.2-1B",
                                  "--random-weights", "-o", str(tmp_path / "c.yaml"), *flag])
    assert result.exit_code == 2 and flag[0] in result.stderr and "--engine llamacpp" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output + result.stderr


def test_defaults_of_the_other_engine_are_not_refused(runner, tmp_path: Path) -> None:
    result = runner.invoke(main, _argv(tmp_path, _bin(tmp_path)))  # --device, --dtype ... at their defaults
    assert result.exit_code == 2 and "llama-bench" in result.stderr  # the fake tool's failure, not a refusal


# llama-speculative -m target-Q8_0.gguf -md draft-Q8_0.gguf -p "Explain in simple terms why the sky is blue."
# -n 64 --spec-draft-n-max 4 --spec-draft-n-min 0 --spec-draft-p-min 0.75 --temp 0 --seed 1 -t 1 (b11312 CPU build,
# the tiny pair), stdout and stderr as `2>&1` saves them: coloured tokens, bytes that are not UTF-8.
SAVED_SPEC = Path(__file__).parent / "data" / "llamaspeculative_tiny.txt"
# llama-bench -p 1,2,3,4,5 -n 32 -d 0,128 -r 10 -t 1 -o json on each model of the tiny pair, a loaded 2-core host.
SAVED_T1 = {role: Path(__file__).parent / "data" / f"llamabench_tiny_t1_{role}.json" for role in ("target", "draft")}


def test_prompt_counts_read_the_saved_real_llama_speculative_output() -> None:
    from planner.calibration.llamacpp_speculative import prompt_counts

    counts = prompt_counts(SAVED_SPEC.read_bytes().decode("utf-8", errors="replace"), 0)
    assert (counts.predicted, counts.drafted, counts.accepted, counts.target_steps) == (65, 64, 48, 17)
    assert counts.decode_s == pytest.approx(0.249) and counts.tokens_per_s == pytest.approx(261.0, rel=0.01)
    assert prompt_counts("encoded 3 tokens in 0.1 seconds\n", 0) is None  # the stats were lost (#22142)


def test_each_model_gets_its_own_eta_and_overhead_from_its_tg_depths(tmp_path: Path) -> None:
    texts = {role: p.read_text(encoding="utf-8") for role, p in SAVED_T1.items()}
    spec = SAVED_SPEC.read_bytes().decode("utf-8", errors="replace")

    def run(argv, timeout, **_):
        if argv[0].endswith("llama-bench"):
            return subprocess.CompletedProcess(argv, 0, texts["draft" if argv[2].endswith("d.gguf") else "target"], "")
        return subprocess.CompletedProcess(argv, 0, spec, "")

    cfg = LlamaProbeConfig(str(_bin(tmp_path)), "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B",
                           str(tmp_path / "t.gguf"), str(tmp_path / "d.gguf"), budget_s=1000.0, run=run,
                           clock=lambda: 0.0, prompts=("a",))
    cal = run_llamacpp_probe(cfg, tmp_path / "c.yaml")
    by_role = {f.role: f for f in cal.fitted_timing}
    assert set(by_role) == {"target", "draft"} and by_role["target"].eta_mem != by_role["draft"].eta_mem
    assert all(f.points == 2 for f in by_role.values())  # tg at depths 0 and 128, per model
    assert any("per model" in n for n in cal.notes)
    deep = next(c for c in cal.fitted_verify if c.context == 128)
    # fastest repeats at depth 128: pp1 2.764, pp2 11.430, pp3 7.010, pp4 7.258 ms: a loaded pp2 above pp3 and pp4,
    # pooled with them (8.566 ms), so r(2..4) = 3.10 rather than 4.14 then 2.54
    assert deep.ratio[1:4] == pytest.approx([(11.430 + 7.010 + 7.258) / 3 / 2.764] * 3, rel=0.01)
    assert deep.measured_ratio[1] == pytest.approx(11.430 / 2.764, rel=0.01)
    assert cal.per_prompt[0].accepted == 48


SIMPLE = Path(__file__).parent / "data" / "server" / "llama_speculative_simple_b11312_mixed.txt"


def test_speculative_simple_is_preferred_and_gives_per_position(tmp_path: Path) -> None:
    """llama-speculative-simple runs llama-server's loop and prints "#acc rate/pos": the probe takes it first."""
    folder = _bin(tmp_path)
    (folder / "llama-speculative-simple").write_text("#!/bin/sh\nexit 1\n")
    (folder / "llama-speculative-simple").chmod(0o755)
    text = SIMPLE.read_text(encoding="utf-8", errors="replace")
    run, now, seen = _fake_tools(tmp_path, [text])
    tools: list[str] = []

    def spy(argv, timeout, **kw):
        tools.append(Path(argv[0]).name)
        return run(argv, timeout, **kw)

    cfg = LlamaProbeConfig(str(folder), "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B",
                           str(tmp_path / "t.gguf"), str(tmp_path / "d.gguf"), budget_s=1000.0, run=spy,
                           clock=lambda: now[0], prompts=("a", "b"), k_max=16)
    cal = run_llamacpp_probe(cfg, tmp_path / "c.yaml")
    assert [t for t in tools if t != "llama-bench"] == ["llama-speculative-simple"] * 2
    fitted = cal.fitted_acceptance[0]
    # the statistics line's rounds (#gen drafts 31 per run) and its per-position rates, pooled over both prompts
    assert fitted.rounds == 62 and cal.counters.num_drafts == 62
    assert fitted.per_position and fitted.per_position[0] == pytest.approx(0.871, abs=1e-3)
    assert cal.counters.accepted_per_position[:2] == [54, 42]  # round(0.871 * 31) + ..., round(0.677 * 31) x 2
