"""Hypothesis-generated invocations of every command: exit codes, one-line errors, no bad value accepted.

Every invocation runs in-process through click's CliRunner. The promise checked:
* the exit code is 0, 1, 2 or 3 (4 would be an internal error, i.e. a bug);
* no traceback reaches the user; exit 2 prints exactly one line on stderr;
* a value that is certainly invalid (NaN, infinity, out of its range, not a number) gives exit 2.
Example counts are fixed and examples derandomized, so the file's run is bounded and repeatable;
nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main

OK_CODES = {0, 1, 2, 3}
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    """FUZZ with a fixed number of examples."""
    return settings(FUZZ, max_examples=examples)

EDGE_NUMBERS = ["0", "-1", "-0", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e308", "1e309", "1e-400", "0x10",
                "010", "1_000", "", " ", "abc", "0.5", "1.0", "2.5", "+3", "3.", ".5", "\u0663", "\u0661\u0662",
                "\uff11", "\u00b2", str(2**31), str(2**63), "9" * 30, "9" * 400, "1" * 4301, "1e3", "5e-324"]
HOSTILE = ["", " ", "[/]", "[bold]x[/", "[link=http://x]y[/link]", "$(touch pwned)", "`id`", "a|b", "x\ny", "x\r\ny",
           "nul\x00byte", "\x1b[31mred", "\u202etxt", "a\u2028b", "../../etc/passwd", "/dev/zero", "/", "~", "%s%n",
           "{0}", "'", '"', "\\", "-", "\U0001F600", "a" * 3000]
TARGETS = ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "Qwen/Qwen2.5-7B", "google/gemma-2-9b",
           "mistralai/Mixtral-8x7B-v0.1", "deepseek-ai/DeepSeek-V3", "llama-3.1-8b"]
DRAFTS = ["meta-llama/Llama-3.2-1B", "Qwen/Qwen2.5-0.5B", "google/gemma-2-2b", "double7/vicuna-68m"]
GPUS = ["h100-sxm", "a100-sxm-80gb", "rtx-4090", "t4", "m2-ultra", "mi300x", "l4", "H100 SXM"]


@dataclass
class Argv:
    """An argv under construction and the certainly-invalid values it holds."""

    argv: list[str]
    bad: list[str] = field(default_factory=list)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def int_bad(low: int, high: int):
    """Certainly invalid for an integer flag from low to high: not an int to Python, or outside the range."""
    return lambda v: (n := _int(v)) is None or not low <= n <= high


def float_bad(low: float, high: float, low_open: bool = False):
    def bad(v: str) -> bool:
        x = _float(v)
        return x is None or not math.isfinite(x) or x < low or x > high or (low_open and x == low)
    return bad


EDGE_SHARE = 8  # one value in EDGE_SHARE is an edge case: most invocations get past validation to the planner


def mix(valid: st.SearchStrategy[str], edge: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.integers(0, EDGE_SHARE - 1).flatmap(lambda i: edge if i == 0 else valid)


def number(valid: list[str]) -> st.SearchStrategy[str]:
    """Mostly valid values; edge cases, any integer, or any float's repr otherwise."""
    return mix(st.sampled_from(valid), st.one_of(st.sampled_from(EDGE_NUMBERS), st.integers(-10, 10**7).map(str),
                                                 st.floats(allow_nan=True, allow_infinity=True).map(repr)))


def name(valid: list[str]) -> st.SearchStrategy[str]:
    """Mostly valid names; hostile ones (markup, shell, control characters) or any text otherwise."""
    return mix(st.sampled_from(valid), st.one_of(st.sampled_from(HOSTILE),
                                                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)))


@st.composite
def flags(draw, head: list[str], required: dict, optional: dict) -> Argv:
    """``required``/``optional`` map a flag to (strategy, badness check or None)."""
    a = Argv(list(head))
    chosen = list(required.items()) + [kv for kv in optional.items() if draw(st.booleans())]
    for flag, (strategy, check) in chosen:
        value = draw(strategy)
        a.argv += [flag, value]
        if check is not None and check(value):
            a.bad.append(f"{flag}={value[:30]!r}")
    return a


HARDWARE = {
    "--gpus": (number(["1", "2", "4", "8"]), int_bad(1, 4096)),
    "--batch": (number(["1", "8", "64"]), int_bad(1, 1_000_000)),
    "--context": (number(["1024", "4096", "8192"]), int_bad(1, 100_000_000)),
    "--memory-gib": (number(["24", "80", "141"]), float_bad(0, 1_000_000, low_open=True)),
    "--precision": (name(["bf16", "fp8", "int4-awq", "q4_k_m"]), None),
    "--kv-precision": (name(["fp16", "fp8"]), None),
    "--engine": (name(["vllm", "sglang", "llamacpp", "auto"]), None),
}
REQUIRED = {"--target": (name(TARGETS), None), "--gpu": (name(GPUS), None)}
DRAFT = {"--draft": (name(DRAFTS), None), "--draft-precision": (name(["bf16", "fp8"]), None)}
K = (number(["1", "3", "5", "8", "16", "20", "64"]), int_bad(1, 64))
UNIT = (number(["0", "0.5", "0.8", "1"]), float_bad(0, 1))
TOP = (number(["1", "3", "10"]), int_bad(1, 10_000))
PRICE = (number(["2.5", "0.3"]), float_bad(0, 1_000_000, low_open=True))
FORMAT = (st.sampled_from(["table", "json", "yaml", "xml"]), None)


def check(result, a: Argv) -> None:
    """The CLI's promise for one invocation."""
    where = f"argv={a.argv!r}\nstderr={result.stderr[-500:]!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), where
    assert result.exit_code in OK_CODES, where
    assert "Traceback (most recent call last)" not in result.output + result.stderr, where
    if result.exit_code == 2:
        assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1, where
    if a.bad:
        assert result.exit_code == 2, f"accepted {a.bad}: {where}"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def _run(runner: CliRunner, a: Argv) -> None:
    check(runner.invoke(main, a.argv, catch_exceptions=True), a)


@fuzz(400)
@given(flags(["fit"], REQUIRED, {**HARDWARE, **DRAFT, "--k": K, "--format": FORMAT}))
def test_fit(runner, a):
    _run(runner, a)


@fuzz(400)
@given(flags(["estimate"], REQUIRED, {**HARDWARE, **DRAFT, "--k": K, "--alpha": UNIT, "--format": FORMAT,
                                      "--task": (name(["chat", "code", "math"]), None)}))
def test_estimate(runner, a):
    _run(runner, a)


@fuzz(250)
@given(flags(["estimate", "--target", "meta-llama/Llama-3.1-8B", "--draft", "meta-llama/Llama-3.2-1B",
              "--gpu", "h100-sxm"], {"--k": K}, {"--acceptance-rate": UNIT}))
def test_estimate_k_and_acceptance_rate(runner, a):
    _run(runner, a)


@fuzz(300)
@given(flags(["estimate", "--target", "meta-llama/Llama-3.1-8B", "--draft", "meta-llama/Llama-3.2-1B",
              "--gpu", "rtx-4090"], {"--k": K, "--engine": (name(["llamacpp", "hf", "vllm"]), None)},
             {"--acceptance-rate": UNIT, "--p-min": UNIT,
              "--drafted-per-round": (number(["0.5", "3", "16"]), float_bad(0, 64, low_open=True)),
              "--drafted": (number(["730", "1"]), int_bad(1, 2**53)),
              "--accepted": (number(["526", "0"]), int_bad(0, 2**53)),
              "--rounds": (number(["150", "1"]), int_bad(1, 2**53)),
              "--mean-accepted-length": (number(["1.5", "3"]), float_bad(1, 65)),
              "--server-version": (name(["b4500", "b11312", "b2300", "0.6.7", "llama-speculative", "4.45"]), None)}))
def test_estimate_draft_loop_flags(runner, a):
    """The draft-loop inputs (issue 9): any mix is an answer, a fit verdict or one line and exit 2."""
    _run(runner, a)


@fuzz(150)
@given(flags(["recommend"], REQUIRED, {**HARDWARE, "--top": TOP, "--gpu-hour-usd": PRICE, "--alpha": UNIT,
                                       "--objective": (st.sampled_from(["latency", "throughput", "cost", "x"]), None),
                                       "--format": FORMAT}))
def test_recommend(runner, a):
    _run(runner, a)


@fuzz(150)
@given(st.sampled_from(["gpus", "models"]).flatmap(lambda cmd: flags(
    [cmd], {}, {"--vendor": (name(["nvidia", "amd", "apple", "Qwen"]), None),
                "--family": (name(["hopper", "llama"]), None),
                "--min-memory": (number(["24", "80"]), float_bad(0, 1_000_000)), "--format": FORMAT})))
def test_lists(runner, a):
    _run(runner, a)


TINY_MEASUREMENTS = """A_decode_throughput:
- id: A-1
  model: Meta-Llama-3-8B
  quant: Q4_K_M
  hardware: NVIDIA GeForce RTX 4090 24GB
  n_gpus: 1
  engine: llama.cpp (llama-bench)
  tg_tok_s: {n512: 127.7}
B_speculative_decoding: []
"""


@fuzz(60)
@given(flags(["validate", "--format", "json"], {}, {
    "--max-median-error": (number(["0.15", "0.5"]), float_bad(0, math.inf)),
    "--measurements": (st.sampled_from(["TINY", "TINY", "/dev/zero", "/", "/nonexistent.yaml"]), None)}))
def test_validate(runner, tmp_path_factory, a):
    # The packaged set takes seconds to check; a one-row file keeps each example short.
    tiny = tmp_path_factory.getbasetemp() / "measurements.yaml"
    tiny.write_text(TINY_MEASUREMENTS)
    a.argv = [str(tiny) if v == "TINY" else v for v in a.argv]
    if "--measurements" not in a.argv:
        a.argv += ["--measurements", str(tiny)]
    _run(runner, a)


@fuzz(200)
@given(flags(["probe", "--max-new-tokens", "-5"], {"--target": (name(["/nonexistent"]), None),
                                                   "--draft": (name(["/nonexistent"]), None)},
             {"--budget-s": (number(["1", "30"]), float_bad(0, 86400, low_open=True)),
              "--temperature": (number(["0", "0.7"]), float_bad(0, 100)),
              "--k-max": (number(["1", "8", "64"]), int_bad(1, 64)),
              "--batch-sizes": (st.sampled_from(["1", "1,4", "0", "", ",", "1,,2", "-1", "\u0663", "x"]), None),
              "--contexts": (st.sampled_from(["0", "8,16", "-1", "", "x"]), None),
              "--device": (name(["auto", "cpu", "cuda:0"]), None)}))
def test_probe_flags(runner, tmp_path_factory, a):
    # --max-new-tokens -5 keeps every probe in argument checking: nothing loads torch here.
    a.argv += ["-o", str(tmp_path_factory.getbasetemp() / "probe.yaml")]
    a.bad.append("--max-new-tokens=-5")
    _run(runner, a)


SERVER_DATA = Path(__file__).parent / "data" / "server"


@fuzz(200)
@given(flags(["calibrate", "--draft", "d"], {"--target": (name(TARGETS), None)},
             {"--k": K, "--model-name": (name(["m"]), None),
              "--llamacpp": (st.sampled_from(["/dev/zero", "/", "/nonexistent.log"]), None),
              "--vllm-metrics": (st.sampled_from(["/dev/zero", "ftp://x/m", "/nonexistent"]), None),
              "--sglang-metrics": (st.sampled_from(["/dev/zero", str(SERVER_DATA / "sglang_0.5.3_after.prom"),
                                                    str(SERVER_DATA / "sglang_0.5.23_after.prom")]), None)}))
def test_calibrate(runner, tmp_path_factory, a):
    a.argv += ["-o", str(tmp_path_factory.getbasetemp() / "cal.yaml"), "--force"]
    _run(runner, a)


@fuzz(150)
@given(flags(["export"], {"--server": (st.sampled_from(["vllm", "sglang", "llamacpp", "trtllm", "hf", "x"]), None)},
             {**REQUIRED, **HARDWARE, **DRAFT, "--k": K, "--server-version": (name(["0.11.0", "b8672"]), None),
              "--target-path": (name(["/models/t"]), None), "--draft-path": (name(["/models/d"]), None)}))
def test_export(runner, tmp_path_factory, a):
    a.argv += ["-o", str(tmp_path_factory.getbasetemp() / "export" / "x.yaml"), "--force"]
    _run(runner, a)


@fuzz(80)
@given(flags(["report"], REQUIRED, {**HARDWARE, "--top": TOP, "--gpu-hour-usd": PRICE}))
def test_report(runner, tmp_path_factory, a):
    a.argv += ["-o", str(tmp_path_factory.getbasetemp() / "report.html"), "--force"]
    _run(runner, a)


@pytest.mark.parametrize("argv", [
    ["fit", "--nope", "1"], ["fit"], ["fitt"], ["fit", "--target"], ["--debug", "fit", "--gpu", "h100-sxm"],
    ["estimate", "--target", "meta-llama/Llama-3.1-8B", "--gpu", "h100-sxm", "--format"],
])
def test_click_usage_errors_are_one_line_exit_2(runner, argv):
    result = runner.invoke(main, argv)
    assert result.exit_code == 2
    assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1, result.stderr


def _broken(exc: BaseException):
    def fail(*args, **kwargs):
        raise exc
    return fail


def test_internal_error_is_one_line_exit_4(runner, monkeypatch):
    import planner.outputs.catalog_view as view

    monkeypatch.setattr(view, "list_gpus", _broken(ZeroDivisionError("division by zero")))
    result = runner.invoke(main, ["gpus"])
    assert result.exit_code == 4
    assert result.stderr == ("specplan: internal error: ZeroDivisionError: division by zero "
                             "(run with --debug for the traceback)\n")


@pytest.mark.parametrize("how", [["--debug", "gpus"], ["gpus"]])
def test_debug_prints_the_traceback(runner, monkeypatch, how):
    import planner.outputs.catalog_view as view

    monkeypatch.setattr(view, "list_gpus", _broken(KeyError("x")))
    env = {"SPECPLAN_DEBUG": "1"} if how == ["gpus"] else {"SPECPLAN_DEBUG": ""}
    result = runner.invoke(main, how, env=env)
    assert result.exit_code == 4
    assert "Traceback (most recent call last)" in result.stderr and "KeyError" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("exc, code, stderr", [(KeyboardInterrupt(), 130, "specplan: interrupted\n"),
                                               (BrokenPipeError(32, "Broken pipe"), 141, "")])
def test_interrupt_and_closed_pipe(runner, monkeypatch, exc, code, stderr):
    import planner.outputs.catalog_view as view

    monkeypatch.setattr(view, "list_gpus", _broken(exc))
    result = runner.invoke(main, ["gpus"])
    assert result.exit_code == code and result.stderr == stderr


def test_os_error_on_a_user_path_is_exit_2(runner, tmp_path):
    (tmp_path / "file").write_text("x")
    result = runner.invoke(main, ["report", "--target", "meta-llama/Llama-3.1-8B", "--gpu", "h100-sxm",
                                  "-o", str(tmp_path / "file" / "r.html")])
    assert result.exit_code == 2 and "is not a folder" in result.stderr and result.stderr.count("\n") == 1


def test_control_characters_in_error_messages_are_escaped(runner):
    result = runner.invoke(main, ["fit", "--target", "x\ny", "--gpu", "h100-sxm"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "control character" in result.stderr


@pytest.mark.parametrize("k", ["17", "40", "64"])
def test_estimate_supports_k_up_to_64(runner, k):
    import json

    result = runner.invoke(main, ["estimate", "--target", "meta-llama/Llama-3.1-8B", "--draft", "meta-llama/Llama-3.2-1B",
                                  "--gpu", "h100-sxm", "--k", k, "--format", "json"])
    assert result.exit_code in (0, 1), result.stderr
    data = json.loads(result.stdout)
    assert data["k"] == int(k) and data["best_k"] <= 16
    assert data["speedup_low"] <= data["speedup"] <= data["speedup_high"]


def test_probe_interrupted_writes_partial_file_and_exits_130(runner, monkeypatch, tmp_path):
    import planner.calibration.probe as pr
    from planner.calibration.schema import CalibrationFile, ModelIdentity, write_calibration

    def interrupted_probe(cfg, output, force):
        # What run_probe does on Ctrl-C: it catches it and writes what it measured, marked partial.
        cal = CalibrationFile(source="probe", partial=True, partial_reason="interrupted (Ctrl-C)",
                              target=ModelIdentity(id=cfg.target), draft=ModelIdentity(id=cfg.draft))
        write_calibration(cal, output)
        return cal

    monkeypatch.setattr(pr, "run_probe", interrupted_probe)
    out = tmp_path / "p.yaml"
    result = runner.invoke(main, ["probe", "--target", "t", "--draft", "d", "-o", str(out)])
    assert result.exit_code == 130 and out.exists()
    assert result.stderr.strip().splitlines()[-1] == "specplan: interrupted"
