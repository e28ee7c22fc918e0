"""specplan against a real llama.cpp CPU build, end to end, no mocks.

``bash .ci/llamacpp_build.sh`` builds llama-server, llama-bench, llama-speculative and
llama-quantize from the llama.cpp tree vendored in the llama-cpp-python sdist and prints their
folder; .ci/run exports it as SPECPLAN_LLAMACPP_BIN. The test writes a tiny random-weight
target/draft pair with one tokenizer (tests/real_llamacpp/models.py, with that tree's gguf-py),
quantizes both to Q8_0 with llama-quantize, times the target with llama-bench, then starts the
real llama-server with the command line ``specplan export --server llamacpp`` writes for the pair
(on 127.0.0.1 and a free port, bounded by timeouts, stopped by its PID), sends a few bounded
completion requests and checks that every flag was taken and that the responses carry draft
timings. Predicted vs measured decode tokens/s on this CPU is printed into pytest's output.

Without SPECPLAN_LLAMACPP_BIN the tests skip, except under CI=true, where its absence fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from planner.cli import main
from tests.real_llamacpp.models import Pair, make_pair
from tests.real_llamacpp.server import export_script, free_port as _free_port, get_json as _get, post_json as _post
from tests.real_llamacpp.server import stop as _stop, version_line as _version_line, wait_healthy as _wait_healthy

pytestmark = pytest.mark.real_llamacpp

TOOLS = ("llama-server", "llama-bench", "llama-speculative", "llama-quantize")
K = 4
CONTEXT = 2048
PROMPTS = ("speculative decoding lets a small draft model propose tokens",
           "the server emits several tokens per step when the draft agrees",
           "the plan predicts how many tokens each round accepts")
N_PREDICT = 48
PLACEHOLDER_GPU = "rtx-4090"  # until the catalogue has the host CPU as a device (issue 10, point 4)


def _absent(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def llama_bin() -> Path:
    value = os.environ.get("SPECPLAN_LLAMACPP_BIN")
    if not value:
        _absent("SPECPLAN_LLAMACPP_BIN is not set (bash .ci/llamacpp_build.sh prints it)")
    folder = Path(value)
    missing = [t for t in TOOLS if not os.access(folder / t, os.X_OK)]
    if missing or not (folder.parent / "src" / "gguf-py").is_dir():
        _absent(f"{folder}: missing {', '.join(missing) or '../src/gguf-py'}")
    return folder


def _run(argv: list, timeout_s: float, merge: bool = False) -> subprocess.CompletedProcess:
    """Run a tool with a time limit; ``merge``: stderr into stdout, as a user's ``2>&1`` saves it."""
    return subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merge else subprocess.PIPE, text=True, errors="replace",
                          timeout=timeout_s, check=False)


@pytest.fixture(scope="module")
def models(llama_bin: Path, tmp_path_factory) -> Pair:
    """The F32 pair from gguf-py, quantized to Q8_0 by the build's llama-quantize."""
    pair = make_pair(llama_bin.parent / "src", tmp_path_factory.mktemp("llamacpp-models"))
    quantized = []
    for f32 in (pair.target_gguf, pair.draft_gguf):
        q8 = f32.with_name(f32.name.replace("F32", "Q8_0"))
        done = _run([llama_bin / "llama-quantize", f32, q8, "Q8_0"], 120)
        assert done.returncode == 0 and q8.is_file(), done.stderr[-2000:]
        quantized.append(q8)
    return Pair(pair.target_dir, pair.draft_dir, *quantized)


@pytest.fixture(scope="module")
def device(runner_module, models: Pair) -> tuple[str, str]:
    """(--gpu value, note): the host CPU where the catalogue has it, else a placeholder GPU."""
    result = runner_module.invoke(main, ["estimate", "--target", str(models.target_dir), "--gpu", "cpu",
                                         "--engine", "llamacpp", "--precision", "q8_0"])
    if result.exit_code == 0:
        return "cpu", "--gpu cpu"
    return PLACEHOLDER_GPU, (f"--gpu cpu is not known yet ({result.stderr.strip()}); predictions use "
                             f"{PLACEHOLDER_GPU} as a placeholder, so predicted vs measured is not a test of the model")


@pytest.fixture(scope="module")
def runner_module():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="module")
def bench(llama_bin: Path, models: Pair) -> dict:
    """llama-bench on the target: prompt processing (pp16) and decode (tg16), JSON records."""
    done = _run([llama_bin / "llama-bench", "-m", models.target_gguf, "-p", "16", "-n", "16", "-r", "2",
                 "-t", "2", "-o", "json"], 300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads(done.stdout)
    by_test = {("pp" if r["n_gen"] == 0 else "tg"): r for r in records}
    assert set(by_test) == {"pp", "tg"}, records
    return by_test


def test_tools_run(llama_bin: Path) -> None:
    for tool in TOOLS:
        done = _run([llama_bin / tool, "--help"], 30)
        assert "usage" in (done.stdout + done.stderr).lower(), (tool, done.stderr[-500:])
    version = _run([llama_bin / "llama-server", "--version"], 30)
    assert "version:" in version.stdout + version.stderr


def test_llama_bench(bench: dict) -> None:
    assert bench["pp"]["n_prompt"] == 16 and bench["tg"]["n_gen"] == 16
    assert bench["pp"]["avg_ts"] > 0 and bench["tg"]["avg_ts"] > 0


def test_llama_speculative_runs_the_pair(llama_bin: Path, models: Pair, tmp_path: Path) -> None:
    """llama-speculative with the pair: stdout and stderr together (as `2>&1` saves them) end in its stats.

    This build's logger is asynchronous and never flushed at exit (common/log.cpp, common_log_main:
    "this design may cause logs to be lost if not flushed before the program exits", llama.cpp issue
    #22142), and llama-speculative does not flush it: on a loaded machine the final n_draft /
    n_drafted / n_accept lines are sometimes lost. The run is repeated up to three times for them.
    """
    argv = [llama_bin / "llama-speculative", "-m", models.target_gguf, "-md", models.draft_gguf, "-p", PROMPTS[0],
            "-n", "32", "--spec-draft-n-max", str(K), "--spec-draft-n-min", "0", "--spec-draft-p-min", "0.75",
            "--temp", "0", "-c", str(CONTEXT), "--seed", "1", "-t", "2"]
    for attempt in range(3):
        done = _run(argv, 180, merge=True)
        (tmp_path / f"speculative-{attempt}.txt").write_text(done.stdout, encoding="utf-8")
        assert done.returncode == 0, done.stdout[-3000:]
        assert PROMPTS[0] in done.stdout, done.stdout[-3000:]  # it printed the prompt and generated after it
        stats = dict(re.findall(r"\b(n_draft|n_drafted|n_accept) += (\d+)", done.stdout))
        if stats:
            break
    else:
        pytest.xfail("llama-speculative's closing stats were lost three times (unflushed async log, llama.cpp #22142)")
    assert stats.get("n_draft") == str(K), done.stdout[-3000:]
    assert 0 <= int(stats["n_accept"]) <= int(stats["n_drafted"]), stats


def _export(runner, models: Pair, gpu: str, version: str, out: Path) -> Path:
    """specplan export for the pair, for the release the build's own --version line names."""
    return export_script(runner, models, gpu, version, out, context=CONTEXT, k=K)


def _predicted(runner, models: Pair, gpu: str) -> dict:
    result = runner.invoke(main, ["estimate", "--target", str(models.target_dir), "--draft", str(models.draft_dir),
                                  "--gpu", gpu, "--engine", "llamacpp", "--precision", "q8_0",
                                  "--context", str(CONTEXT), "--k", str(K), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@dataclass(frozen=True)
class Served:
    """One run of the exported command line: what the server said and logged."""

    folder: Path
    props: dict
    responses: list[dict]
    log: str
    responses_path: Path
    log_path: Path


@pytest.fixture(scope="module")
def served(llama_bin: Path, models: Pair, device, runner_module, tmp_path_factory) -> Served:
    """The exported -serve.sh run under bash (127.0.0.1, a free port), PROMPTS sent, the server stopped."""
    folder = tmp_path_factory.mktemp("llamacpp-served")
    script = _export(runner_module, models, device[0], _version_line(llama_bin), folder)
    port = _free_port()
    log = folder / "server.log"
    env = {**os.environ, "PATH": f"{llama_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "LLAMA_ARG_HOST": "127.0.0.1", "LLAMA_ARG_PORT": str(port), "LLAMA_ARG_THREADS": "2"}
    with log.open("wb") as sink:
        # The script ends in `exec llama-server`, so this PID is the server's.
        proc = subprocess.Popen(["bash", str(script)], stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=folder)
    responses = []
    try:
        _wait_healthy(proc, port, log)
        props = _get(f"http://127.0.0.1:{port}/props")
        for prompt in PROMPTS:
            responses.append(_post(f"http://127.0.0.1:{port}/completion",
                                   {"prompt": prompt, "n_predict": N_PREDICT, "temperature": 0, "top_k": 1,
                                    "seed": 1, "cache_prompt": False}, 120))
    finally:
        _stop(proc)
    path = folder / "responses.json"
    path.write_text(json.dumps(responses), encoding="utf-8")
    return Served(folder, props, responses, log.read_text(errors="replace"), path, log)


_ROUND_LINE = re.compile(r"draft acceptance = [0-9.]+ \( *(\d+) accepted / *(\d+) generated\), mean len = +([0-9.]+)")


def _counts(served: Served) -> tuple[int, int]:
    """(drafted, accepted) tokens over all responses, from their timings."""
    timings = [r["timings"] for r in served.responses]
    return sum(t.get("draft_n", 0) for t in timings), sum(t.get("draft_n_accepted", 0) for t in timings)


def test_exported_command_line_runs_the_real_server(served: Served, models: Pair) -> None:
    text = served.log
    assert "invalid argument" not in text and "error while handling argument" not in text, text[-3000:]
    # The flags took effect: one slot of the whole context (-c, -np), the draft model loaded
    # (--spec-draft-model, --spec-type; /props shows only the per-request speculative.types, "none"),
    # and every request drafted at most k tokens per round (--spec-draft-n-max): the log's
    # "mean len" is accepted tokens per round plus the target's own, at most k + 1.
    settings = served.props["default_generation_settings"]
    assert served.props["total_slots"] == 1 and settings["n_ctx"] == CONTEXT, served.props
    assert f"loading draft model '{models.draft_gguf}'" in text, text[-3000:]
    rounds = _ROUND_LINE.findall(text)
    assert len(rounds) == len(PROMPTS), text[-3000:]
    assert all(1.0 <= float(mean) <= K + 1 for _, _, mean in rounds), rounds
    timings = [r["timings"] for r in served.responses]
    assert all("draft_n" in t and "draft_n_accepted" in t for t in timings), timings
    drafted, accepted = _counts(served)
    assert drafted > 0 and 0 <= accepted <= drafted, timings
    # The responses and the log count the same drafted and accepted tokens.
    assert [(int(a), int(g)) for a, g, _ in rounds] == [(t["draft_n_accepted"], t["draft_n"]) for t in timings]


@pytest.mark.parametrize("source", ["responses_path", "log_path"])
def test_calibrate_reads_the_real_outputs(served: Served, models: Pair, runner_module, source: str) -> None:
    """The responses and the b11312 log (`draft acceptance = ... mean len = ...`) give the responses' own counts."""
    out = served.folder / f"calibration-{source}.yaml"
    result = runner_module.invoke(main, ["calibrate", "--llamacpp", str(getattr(served, source)),
                                         "--target", str(models.target_dir), "--draft", str(models.draft_dir),
                                         "--k", str(K), "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output + result.stderr
    counters = yaml.safe_load(out.read_text(encoding="utf-8"))["counters"]
    assert (counters["num_draft_tokens"], counters["num_accepted_tokens"]) == _counts(served)


def test_predicted_vs_measured_on_this_cpu(served: Served, models: Pair, bench: dict, device, llama_bin: Path,
                                           runner_module, capsys) -> None:
    gpu, note = device
    timings = [r["timings"] for r in served.responses]
    drafted, accepted = _counts(served)
    predicted = _predicted(runner_module, models, gpu)
    measured = sorted(t["predicted_per_second"] for t in timings)[len(timings) // 2]
    report = (f"\nllama.cpp CPU build {llama_bin}: {note}\n"
          f"  target decode (llama-bench tg16, 2 threads): measured {bench['tg']['avg_ts']:.1f} tokens/s, "
          f"predicted {predicted['target_tokens_per_s']:.1f}\n"
          f"  target prompt (llama-bench pp16): measured {bench['pp']['avg_ts']:.1f} tokens/s\n"
          f"  speculative decode (llama-server, k={K}, median of {len(timings)}): measured {measured:.1f} tokens/s, "
          f"predicted {predicted['spec_tokens_per_s']:.1f}\n"
          f"  acceptance: {accepted} of {drafted} drafted tokens ({accepted / drafted:.2f}); "
          f"predicted speedup {predicted['speedup']:.2f}x, measured "
          f"{measured / bench['tg']['avg_ts']:.2f}x (server vs llama-bench decode; the machine is shared, "
          f"load average {os.getloadavg()[0]:.1f})")
    with capsys.disabled():  # in the CI log even when the test passes
        print(report)
    assert predicted["spec_tokens_per_s"] > 0 and measured > 0
