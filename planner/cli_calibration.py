"""specplan detect, probe and calibrate: the commands that measure (the host CPU, NVML, the probe, live servers)."""

from __future__ import annotations

from typing import Any

import click

from planner.cli_options import _K, _UNIT, _emit, _format_option
from planner.cli_types import NAME, Device, Float, Int, IntList
from planner.errors import SpecplanError

__all__ = ["detect", "probe", "calibrate"]

# Options only some probes read: given explicitly to another, they are refused, not ignored.
_HF_ONLY = ("random_weights", "trust_remote_code", "device", "dtype", "batch_sizes")
_LLAMACPP_ONLY = ("llama_bin", "target_gguf", "draft_gguf", "threads")
_SERVER_ONLY = ("baseline_url", "concurrency", "requests", "model", "k", "p_min", "gpus", "timeout_s", "endpoint")
_REFUSED = {  # probe kind -> the options it would ignore
    "hf": _LLAMACPP_ONLY + _SERVER_ONLY,
    "llamacpp": _HF_ONLY + ("temperature",) + _SERVER_ONLY,  # the llama.cpp engine probe runs greedy only
    "server": _HF_ONLY + _LLAMACPP_ONLY + ("k_max", "contexts"),
}
_KIND_NAME = {"hf": "--engine hf (transformers)", "llamacpp": "--engine llamacpp (the engine probe)",
              "server": "--server (the live-server probe)"}


def _refuse_foreign_flags(kind: str) -> None:
    """One line, exit 2, for an option this probe kind does not read that the user gave (command line or environment)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = [p.opts[0] for p in ctx.command.params if p.name in _REFUSED[kind]
             and ctx.get_parameter_source(p.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]
    if given:
        it = "it" if len(given) == 1 else "them"
        readers = [_KIND_NAME[other] for other in _REFUSED
                   if other != kind and not any(p.name in _REFUSED[other] for p in ctx.command.params if p.opts[0] in given)]
        only = f" (only {' or '.join(readers)} reads {it})" if readers else ""
        raise SpecplanError(f"{', '.join(given)}: {_KIND_NAME[kind]} does not read {it} and would ignore {it}{only}")


@click.command()
@click.option("--require-gpu", is_flag=True, help="Exit 3 when no NVIDIA GPU is found (the CPU alone is not enough).")
@_format_option
def detect(fmt: str, require_gpu: bool) -> None:
    """List this machine's CPU (plan on it with --gpu cpu) and NVIDIA GPUs (NVML) with their catalogue match.

    Exit 0 whenever the CPU is reported, with a "no NVIDIA GPU" line when NVML finds none;
    --require-gpu keeps the old exit 3 for scripts that need a GPU.
    """
    from planner.calibration.host import detect_report, host_device
    from planner.calibration.nvml import NoGpuError
    from planner.outputs.host_view import print_detect_report

    report = detect_report(host_device())
    _emit(report, fmt, print_detect_report)
    if require_gpu and not report["gpus"]:
        raise NoGpuError(str(report["no_gpu"]))


@click.command()
@click.option("--engine", type=click.Choice(["hf", "llamacpp", "vllm", "sglang", "auto"]), default=None,
              help="Engine to time: hf (transformers, torch; the default) or llamacpp (the build in --llama-bin, GGUF "
                   "files); with --server, the engine serving it: vllm, sglang, llamacpp or auto (the default: read "
                   "from its /props or /metrics).")
@click.option("--server", type=NAME, default=None, help="Base URL of a running speculative server (http:// or https://): "
              "send it bounded streaming load instead of timing models here.")
@click.option("--baseline-url", type=NAME, default=None, help="Base URL of the same target served without speculation "
              "(--server): the same load runs there and the measured speedup is reported.")
@click.option("--concurrency", type=IntList(1, 4096), default="1,4,16", show_default=True,
              help="Concurrency levels of --server, run in turn (requests in flight, comma-separated).")
@click.option("--requests", type=Int(1, 100_000), default=16, show_default=True,
              help="Requests per concurrency level (--server).")
@click.option("--model", type=NAME, default=None, help="Served model name to send (--server; default: the first of its /v1/models).")
@click.option("--k", "k", type=_K, default=None, help="Draft tokens per step the server uses (--server; needed only "
              "when neither its /props nor its metrics state it).")
@click.option("--p-min", type=_UNIT, default=None, help="llama.cpp p-min the server runs with, a probability 0..1 "
              "(--server; used when its /props does not state it).")
@click.option("--gpus", type=Int(1, 4096), default=1, show_default=True, help="GPUs the server runs on (--server, with --gpu).")
@click.option("--timeout-s", type=Float(0, 3600, low_open=True), default=60.0, show_default=True,
              help="Limit on every HTTP call and every wait for the next streamed chunk (--server), seconds.")
@click.option("--endpoint", type=click.Choice(["completions", "chat"]), default="completions", show_default=True,
              help="OpenAI endpoint to stream from (--server): /v1/completions or /v1/chat/completions.")
@click.option("--llama-bin", type=click.Path(file_okay=False), default=None, help="llama.cpp build folder with llama-bench and llama-speculative (--engine llamacpp).")
@click.option("--target-gguf", type=click.Path(dir_okay=False), default=None, help="Target GGUF file (--engine llamacpp).")
@click.option("--draft-gguf", type=click.Path(dir_okay=False), default=None, help="Draft GGUF file (--engine llamacpp).")
@click.option("--threads", type=Int(1, 4096), default=None, help="llama.cpp -t threads (--engine llamacpp; default: the tools' own).")
@click.option("--target", required=True, type=NAME, help="Target: a local folder (or a catalogue name with --random-weights).")
@click.option("--draft", required=True, type=NAME, help="Draft: a local folder (or a catalogue name with --random-weights).")
@click.option("--random-weights", is_flag=True, help="Build the models from their config.json with random weights (timing only).")
@click.option("--trust-remote-code", is_flag=True, help="Allow model code from the model folder (off unless asked).")
@click.option("--budget-s", type=Float(0, 86400, low_open=True), default=120.0, show_default=True, help="Time budget for the whole probe, seconds.")
@click.option("--prompts", type=click.Path(dir_okay=False), default=None, help="JSONL or text file of prompts (one per line; default: built-in chat prompts).")
@click.option("--temperature", type=Float(0, 100), default=None,
              help="Sampling temperature for the sampled rounds (default 0.7; 0: greedy rounds only); with --server, "
                   "of every request (default 0).")
@click.option("--k-max", type=_K, default=8, show_default=True, help="Longest draft to verify and to run rounds with (tokens, 1..64).")
@click.option("--batch-sizes", type=IntList(1, 4096), default="1,4", show_default=True, help="Batch sizes of the timing grid (sequences, comma-separated).")
@click.option("--contexts", type=IntList(0, 1_000_000), default="128,512", show_default=True, help="Cached lengths of the timing grid (tokens, comma-separated).")
@click.option("--max-new-tokens", "--max-tokens", "max_new_tokens", type=Int(1, 1_000_000), default=64, show_default=True,
              help="Tokens generated per prompt in the speculative rounds (llama-speculative -n); with --server, per request (max_tokens).")
@click.option("--device", type=Device(), default="auto", show_default=True, help="Device to run on: auto, cpu, mps, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True,
              help="Weight and activation dtype of both models (auto: bf16 on CUDA, fp32 on CPU).")
@click.option("--gpu", type=NAME, default=None, help="Catalogue GPU of this machine, or cpu, for the eta fit (default: NVML match; the host CPU on --device cpu).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Calibration file to write (YAML).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@_format_option
def probe(fmt: str, output: str, force: bool, batch_sizes: tuple[int, ...], contexts: tuple[int, ...],
          prompts: str | None, engine: str | None, llama_bin: str | None, target_gguf: str | None,
          draft_gguf: str | None, threads: int | None, server: str | None, baseline_url: str | None,
          concurrency: tuple[int, ...], requests: int, model: str | None, k: int | None, p_min: float | None,
          gpus: int, timeout_s: float, endpoint: str, **flags: Any) -> None:
    """Time the real pair on this machine and run real speculative rounds; write a calibration file.

    --engine llamacpp times the user's llama.cpp build instead (llama-bench, llama-speculative).
    --server URL measures a running server instead: bounded streaming load at each --concurrency,
    TTFT, inter-token latency, tokens/s, acceptance from the server, speedup over --baseline-url.
    """
    from planner.calibration.probe import ProbeConfig, read_prompts, run_probe
    from planner.inputs import check_output

    if server is None and baseline_url is not None:
        raise SpecplanError("--baseline-url needs --server (the speculative server to compare with)")
    if server is None and engine in ("vllm", "sglang", "auto"):
        raise SpecplanError(f"--engine {engine} needs --server URL (the engine probe times hf or llamacpp here)")
    if server is not None and engine == "hf":
        raise SpecplanError("--engine hf times transformers on this machine; with --server give vllm, sglang, "
                            "llamacpp or auto")
    _refuse_foreign_flags("server" if server is not None else engine or "hf")
    check_output(output, force)
    if server is not None:
        from planner.calibration.server_probe import ServerProbeConfig, run_server_probe

        scfg = ServerProbeConfig(url=server, target=flags["target"], draft=flags["draft"], baseline_url=baseline_url,
                                 engine=engine or "auto", concurrency=concurrency, requests=requests,
                                 max_tokens=flags["max_new_tokens"], prompts=read_prompts(prompts),
                                 budget_s=flags["budget_s"], timeout_s=timeout_s, model=model, k=k, p_min=p_min,
                                 temperature=flags["temperature"] or 0.0, endpoint=endpoint, gpu=flags["gpu"], gpus=gpus)
        _measure(scfg, run_server_probe, output, fmt)
        return
    if flags["temperature"] is None:
        flags["temperature"] = 0.7
    if engine == "llamacpp":
        from planner.calibration.llamacpp_probe import LlamaProbeConfig, run_llamacpp_probe

        missing = [f for f, v in (("--llama-bin", llama_bin), ("--target-gguf", target_gguf), ("--draft-gguf", draft_gguf)) if not v]
        if missing:
            raise SpecplanError(f"--engine llamacpp needs {', '.join(missing)}")
        lcfg = LlamaProbeConfig(llama_bin=llama_bin, target=flags["target"], draft=flags["draft"],  # type: ignore[arg-type]
                                target_gguf=target_gguf, draft_gguf=draft_gguf,  # type: ignore[arg-type]
                                gpu=flags["gpu"] or "cpu", budget_s=flags["budget_s"], k_max=flags["k_max"],
                                contexts=contexts, threads=threads, prompts=read_prompts(prompts),
                                n_predict=flags["max_new_tokens"])
        _measure(lcfg, run_llamacpp_probe, output, fmt)
        return
    cfg = ProbeConfig(**flags, batch_sizes=batch_sizes, contexts=contexts, prompts=read_prompts(prompts))
    _measure(cfg, run_probe, output, fmt)


def _measure(cfg: Any, run: Any, output: str, fmt: str) -> None:
    """Run one probe with a progress bar on stderr, print what it wrote; Ctrl-C still exits 130 after the file."""
    from planner.outputs.calibration_view import calibration_summary_to_dict, print_calibration_summary, progress_printer

    with progress_printer() as progress:
        cfg.progress = progress
        cal = run(cfg, output, force=True)
    _emit(calibration_summary_to_dict(cal, output), fmt, print_calibration_summary)
    if cal.partial and (cal.partial_reason or "").startswith("interrupted"):
        raise KeyboardInterrupt  # the partial file is written; the exit code still says "interrupted" (130)


@click.command()
@click.option("--vllm-metrics", type=NAME, default=None, help="vLLM /metrics URL or a saved copy (the scrape after the window).")
@click.option("--vllm-metrics-before", type=NAME, default=None, help="vLLM /metrics URL or saved copy from before the window (counters are differenced).")
@click.option("--sglang-metrics", type=NAME, default=None, help="SGLang /metrics URL or a saved copy (--enable-metrics; the scrape after the window).")
@click.option("--sglang-metrics-before", type=NAME, default=None, help="SGLang /metrics URL or saved copy from before the window (counters are differenced).")
@click.option("--llamacpp", "llamacpp_files", multiple=True, type=click.Path(dir_okay=False),
              help="llama.cpp server responses (JSON), server log, or llama-speculative output; repeatable.")
@click.option("--trtllm-stats", "trtllm_files", multiple=True, type=NAME,
              help="TensorRT-LLM iteration stats: trtllm-serve's GET /metrics JSON (URL or saved copy; "
                   "enable_iter_perf_stats: true) or llm.get_stats() output; repeatable (reads add up).")
@click.option("--target", type=NAME, required=True, help="Target model the server ran (catalogue name or path).")
@click.option("--draft", type=NAME, default=None, help="Draft model the server ran (--method draft).")
@click.option("--method", type=NAME, default=None,
              help="Proposal method the server ran: draft, eagle, eagle3, mtp, ngram or suffix (default: draft, or "
                   "the --head's method).")
@click.option("--head", type=NAME, default=None, help="EAGLE / EAGLE-3 head the server ran (Hub id or local folder); "
              "for mtp a separate NextN release (default: the target's own layers).")
@click.option("--k", "k", type=_K, default=None, help="Draft tokens per step the server used (count: num_speculative_tokens / SGLang --speculative-num-steps / --draft-max / TRT-LLM max_draft_len; SGLang 0.5.23 metrics and llama.cpp outputs that print n_max or n_draft need none).")
@click.option("--num-steps", type=_K, default=None, help="SGLang --speculative-num-steps of a tree (--sglang-metrics).")
@click.option("--topk", type=_K, default=None, help="SGLang --speculative-eagle-topk of a tree (--sglang-metrics).")
@click.option("--num-draft-tokens", type=Int(2, 4096), default=None,
              help="SGLang --speculative-num-draft-tokens (--sglang-metrics; NGRAM: its draft size).")
@click.option("--model-name", type=NAME, default=None, help="vLLM / SGLang model_name label to keep (when one server serves several).")
@click.option("--p-min", type=_UNIT, default=None,
              help="llama.cpp p-min the server ran with, a probability 0..1 (used when its /props or log does not say).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Calibration file to write (YAML).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@_format_option
def calibrate(vllm_metrics: str | None, vllm_metrics_before: str | None, sglang_metrics: str | None,
              sglang_metrics_before: str | None, llamacpp_files: tuple[str, ...], trtllm_files: tuple[str, ...],
              target: str, draft: str | None, method: str | None, head: str | None, k: int | None,
              num_steps: int | None, topk: int | None, num_draft_tokens: int | None, model_name: str | None,
              p_min: float | None, output: str, force: bool, fmt: str) -> None:
    """Turn a running server's acceptance counters into a calibration file, for the method it ran."""
    from planner.calibration import server_metrics as sm
    from planner.calibration.method_fits import measured_proposer, tree_shape
    from planner.calibration.schema import write_calibration
    from planner.inputs import check_output
    from planner.outputs.calibration_view import calibration_summary_to_dict, print_calibration_summary

    if [bool(vllm_metrics), bool(sglang_metrics), bool(llamacpp_files), bool(trtllm_files)].count(True) != 1:
        raise SpecplanError("give exactly one of --vllm-metrics, --sglang-metrics, --llamacpp or --trtllm-stats")
    orphans = [flag for flag, before, after in (("--vllm-metrics-before", vllm_metrics_before, vllm_metrics),
                                                ("--sglang-metrics-before", sglang_metrics_before, sglang_metrics))
               if before and not after]
    if orphans:
        raise SpecplanError(f"{orphans[0]} needs {orphans[0].removesuffix('-before')} (the scrape after the window)")
    shape_flags = [f for f, v in (("--num-steps", num_steps), ("--topk", topk), ("--num-draft-tokens", num_draft_tokens))
                   if v is not None]
    if shape_flags and not sglang_metrics:
        raise SpecplanError(f"{', '.join(shape_flags)}: only --sglang-metrics reads a tree shape (SGLang's accept "
                            "length is a tree's)")
    proposer = measured_proposer(method, head, draft, target)
    if proposer.method == "ngram" and (num_steps is not None or topk is not None):
        raise SpecplanError("--num-steps / --topk: SGLang's NGRAM trie is not an EAGLE tree; give --num-draft-tokens "
                            "(k = num_draft_tokens - 1)")
    if proposer.method == "suffix" and sglang_metrics:
        raise SpecplanError("SGLang serves no suffix decoding: --method suffix reads --vllm-metrics")
    check_output(output, force)
    kw = {"method": proposer.method, "head": proposer.head}
    if sglang_metrics:
        from planner.calibration.sglang_metrics import sglang_calibration

        if proposer.method == "ngram":
            shape = None if num_draft_tokens is None else tree_shape(num_draft_tokens - 1, 1, num_draft_tokens, None,
                                                                     "--num-draft-tokens")
        else:
            shape = tree_shape(num_steps, topk, num_draft_tokens, k, "--sglang-metrics")
        before_text = (sm.read_text_source(sglang_metrics_before, "--sglang-metrics-before")
                       if sglang_metrics_before else None)
        cal = sglang_calibration(before_text, sm.read_text_source(sglang_metrics, "--sglang-metrics"), k, target,
                                 draft, model_name=model_name, shape=shape, **kw)
    elif vllm_metrics:
        before = sm.read_text_source(vllm_metrics_before, "--vllm-metrics-before") if vllm_metrics_before else None
        cal = sm.vllm_calibration(before, sm.read_text_source(vllm_metrics, "--vllm-metrics"), k, target, draft,
                                  model_name=model_name, **kw)
    elif trtllm_files:
        from planner.calibration.trtllm_stats import trtllm_calibration

        texts = [sm.read_text_source(f, "--trtllm-stats") for f in trtllm_files]
        cal = trtllm_calibration(texts, k, target, draft, list(trtllm_files), **kw)
    else:
        texts = [sm.read_text_source(f, "--llamacpp", log=True) for f in llamacpp_files]
        cal = sm.llamacpp_calibration(texts, k, target, draft, list(llamacpp_files), p_min=p_min, **kw)
    write_calibration(cal, output, force=force)
    _emit(calibration_summary_to_dict(cal, output), fmt, print_calibration_summary)
