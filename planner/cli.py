"""specplan command line: parses flags, calls the planner, prints the result.

Exit codes: 0 success (fit: it fits), 1 fit: it does not fit, 2 bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from planner.errors import SpecplanError
from planner.outputs.render import FORMATS, dump

__all__ = ["main"]

EXIT_DOES_NOT_FIT = 1


class _Group(click.Group):
    """Prints usage errors and SpecplanError as one line on stderr, exit 2, no traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("specplan: aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            prefix = f"{ctx.command_path}: " if ctx is not None else "specplan: "
            click.echo(f"{prefix}error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except SpecplanError as exc:
            click.echo(f"specplan: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _emit(data: Any, fmt: str, table: Callable[[Any], None]) -> None:
    text = dump(data, fmt, table)
    if text is not None:
        click.echo(text.rstrip("\n"))


_format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="specplan", prog_name="specplan")
def main() -> None:
    """Plan speculative-decoding deployments: catalogues, VRAM fit, speed and configs."""


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply a list of click options in reading order."""

    def wrap(f: Any) -> Any:
        for d in reversed(decorators):
            f = d(f)
        return f

    return wrap


_hardware = _options(
    click.option("--target", required=True, help="Target model: catalogue name or a folder/config.json."),
    click.option("--gpu", required=True, help="GPU: catalogue id, name or alias (see `specplan gpus`)."),
    click.option("--gpus", type=int, default=1, show_default=True,
                 help="GPUs in the group (tensor parallel or layer split)."),
    click.option("--precision", default=None,
                 help="Target weight format (default: the engine's; e.g. bf16, fp8, int4-awq, q4_k_m)."),
    click.option("--kv-precision", default=None, help="KV-cache format: fp16 (default), fp8, q8_0, q4_0."),
    click.option("--batch", type=int, default=1, show_default=True, help="Concurrent sequences."),
    click.option("--context", type=int, default=None,
                 help="Tokens per sequence, prompt + output (default: 4096 or the model's maximum)."),
    click.option("--engine", default="auto", show_default=True,
                 help="vllm, sglang, trtllm, llamacpp, hf, gptfast (auto: vllm; llamacpp on Apple)."),
    click.option("--memory-gib", type=float, default=None,
                 help="Memory of one GPU if not the catalogue's (Apple: your configuration)."),
)
_draft = _options(
    click.option("--draft", default=None, help="Draft model: catalogue name or a folder/config.json."),
    click.option("--draft-precision", default=None, help="Draft weight format (default: the target's)."),
    click.option("--allow-tokenizer-mismatch", is_flag=True, help="Plan a draft whose tokenizer differs from the target's."),
)
_task = click.option("--task", type=click.Choice(["chat", "code", "math", "summarize", "structured"]), default="chat",
                     show_default=True, help="Workload, for the alpha prior.")


@main.command()
@_hardware
@_draft
@click.option("--k", "k", type=int, default=5, show_default=True, help="Draft tokens per round (verify buffers).")
@_format_option
def fit(fmt: str, **flags: Any) -> int:
    """Will the target (and draft) fit in GPU memory? Exit 0 if it fits, 1 if not."""
    from planner.memory import fit_report
    from planner.outputs.fit_view import fit_to_dict, print_fit_table
    from planner.requests import FitInputs, build_fit_request

    request, warnings = build_fit_request(FitInputs(**flags))
    data = fit_to_dict(fit_report(request, warnings))
    _emit(data, fmt, print_fit_table)
    return 0 if data["fits"] else EXIT_DOES_NOT_FIT


@main.command()
@_hardware
@_draft
@click.option("--k", "k", type=int, default=None, help="Draft tokens per round (default: the best k).")
@click.option("--alpha", type=float, default=None, help="Per-token acceptance probability, 0..1.")
@click.option("--acceptance-rate", type=float, default=None,
              help="Accepted / proposed draft tokens as servers report it, 0..1 (needs the --k it was measured at).")
@_task
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration file from `specplan probe` or `specplan calibrate`.")
@_format_option
def estimate(fmt: str, k: int | None, alpha: float | None, acceptance_rate: float | None, task: str,
             calibration: str | None, **flags: Any) -> int:
    """Predict pass times, c, r, alpha, speedup and best k for one configuration."""
    from planner.outputs.plan_view import estimate_to_dict, print_estimate
    from planner.plan import EstimateInputs
    from planner.plan import estimate as run_estimate
    from planner.requests import FitInputs

    fit_inputs = FitInputs(**flags, **({"k": k} if k is not None else {}))
    result = run_estimate(EstimateInputs(fit_inputs, k_given=k is not None, alpha=alpha,
                                         acceptance_rate=acceptance_rate, task=task, calibration=calibration))
    data = estimate_to_dict(result)
    _emit(data, fmt, print_estimate)
    return 0 if data["fit"]["fits"] else EXIT_DOES_NOT_FIT


@main.command()
@_hardware
@_task
@click.option("--objective", type=click.Choice(["latency", "throughput", "cost"]), default="latency",
              show_default=True, help="Rank by tokens/s per sequence, total tokens/s, or tokens per dollar.")
@click.option("--top", type=int, default=10, show_default=True, help="Rows to show.")
@click.option("--gpu-hour-usd", type=float, default=None, help="Price of one GPU per hour (for --objective cost).")
@click.option("--alpha", type=float, default=None, help="Per-token alpha for every draft (default: each draft's prior).")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration file from `specplan probe` or `specplan calibrate`.")
@_format_option
def recommend(fmt: str, task: str, objective: str, top: int, gpu_hour_usd: float | None, alpha: float | None,
              calibration: str | None, **flags: Any) -> int:
    """Rank drafts, draft precisions, k and GPU counts for a target (with "no speculation" as a row)."""
    from planner.outputs.plan_view import print_recommendation, recommendation_to_dict
    from planner.plan import RecommendInputs
    from planner.plan import recommend as run_recommend
    from planner.requests import FitInputs

    if alpha is not None:
        from planner.speedup import check_alpha

        check_alpha(alpha)
    result = run_recommend(RecommendInputs(FitInputs(**flags), task=task, objective=objective,  # type: ignore[arg-type]
                                           top=top, gpu_hour_usd=gpu_hour_usd, alpha=alpha,
                                           calibration=calibration))
    _emit(recommendation_to_dict(result, task, objective), fmt, print_recommendation)
    return 0


@main.command()
@click.option("--vendor", default=None, help="nvidia, amd, apple.")
@click.option("--family", default=None, help="Architecture, e.g. hopper, ada, ampere, cdna3, apple-m4.")
@click.option("--min-memory", type=float, default=None, help="At least this much memory, GiB.")
@_format_option
def gpus(vendor: str | None, family: str | None, min_memory: float | None, fmt: str) -> None:
    """List the accelerators in the catalogue."""
    from planner.outputs.catalog_view import list_gpus, print_gpu_table

    _emit(list_gpus(vendor, family, min_memory), fmt, print_gpu_table)


@main.command()
@click.option("--vendor", default=None, help="Publisher: the Hugging Face organisation (meta-llama, Qwen, google...).")
@click.option("--family", default=None, help="Model family, e.g. llama, qwen, gemma.")
@click.option("--min-memory", type=float, default=None, help="bf16 weights of at least this many GiB.")
@click.option("--tokenizer", default=None, help="Only models with this tokenizer (drafts for a target).")
@_format_option
def models(vendor: str | None, family: str | None, min_memory: float | None, tokenizer: str | None, fmt: str) -> None:
    """List the models in the catalogue."""
    from planner.outputs.catalog_view import list_models, print_model_table

    _emit(list_models(vendor, family, min_memory, tokenizer), fmt, print_model_table)


@main.command()
@click.option("--measurements", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A measurements YAML of the same shape (default: the packaged public set).")
@click.option("--max-median-error", type=float, default=0.15, show_default=True,
              help="Exit 1 when a median |error| exceeds this fraction.")
@_format_option
def validate(measurements: str | None, max_median_error: float, fmt: str) -> int:
    """Compare predictions with published measurements, per row and in total."""
    from planner.outputs.validate_view import print_validation_table, validation_to_dict
    from planner.validate import load_measurements
    from planner.validate import validate as run_validation

    data = validation_to_dict(run_validation(load_measurements(measurements)))
    _emit(data, fmt, print_validation_table)
    worst = max(s["median_abs_error"] for s in data["summary"].values() if s["rows"])
    return EXIT_DOES_NOT_FIT if worst > max_median_error else 0


@main.command()
@_hardware
@_task
@click.option("--objective", type=click.Choice(["latency", "throughput", "cost"]), default="latency", show_default=True)
@click.option("--top", type=int, default=10, show_default=True, help="Candidates in the table.")
@click.option("--gpu-hour-usd", type=float, default=None, help="Price of one GPU per hour (for --objective cost).")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None, help="Calibration file to re-plan with.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def report(task: str, objective: str, top: int, gpu_hour_usd: float | None, calibration: str | None, output: str,
           force: bool, **flags: Any) -> None:
    """Write a self-contained HTML report (inline CSS and SVG, no scripts) of a recommendation."""
    from planner.atomic import write_text_atomic
    from planner.outputs.report import build_report_data, render_report
    from planner.plan import RecommendInputs
    from planner.requests import FitInputs

    data = build_report_data(RecommendInputs(FitInputs(**flags), task=task, objective=objective,  # type: ignore[arg-type]
                                             top=top, gpu_hour_usd=gpu_hour_usd, calibration=calibration))
    write_text_atomic(output, render_report(data), force=force)
    click.echo(f"wrote {output}: {data['verdict']}")


@main.command()
@click.option("--server", required=True,
              type=click.Choice(["vllm", "sglang", "llamacpp", "trtllm", "hf", "ollama", "tgi"]),
              help="Server to configure.")
@click.option("--from-plan", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A plan written by `recommend --format json` or `estimate --format json`; planning flags "
                   "given with it re-plan from its settings.")
@click.option("--target", default=None, help="Target model: Hub id, catalogue name or a folder (without --from-plan).")
@click.option("--gpu", default=None, help="GPU: catalogue id, name or alias (without --from-plan).")
@click.option("--gpus", type=int, default=1, show_default=True, help="GPUs in the group (tensor parallel).")
@click.option("--precision", default=None, help="Target weight format (default: the engine's).")
@click.option("--kv-precision", default=None, help="KV-cache format: fp16 (default), fp8, q8_0, q4_0.")
@click.option("--batch", type=int, default=1, show_default=True, help="Concurrent sequences.")
@click.option("--context", type=int, default=None,
              help="Tokens per sequence, prompt + output (default: 4096 or the model's maximum).")
@click.option("--engine", default=None, help="Engine to plan with (default: the server's own).")
@click.option("--memory-gib", type=float, default=None, help="Memory of one GPU in GiB if not the catalogue's.")
@_draft
@click.option("--k", "k", type=int, default=None, help="Draft tokens per round (default: the best k).")
@_task
@click.option("--server-version", default=None,
              help="Server release the config is for, as the server prints it (0.9.2; llama.cpp: b8672 or its "
                   "--version line).")
@click.option("--target-path", default=None, help="Checkpoint the server should load for the target (folder, GGUF file).")
@click.option("--draft-path", default=None, help="Checkpoint the server should load for the draft.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Main file, written under exactly this name (e.g. vllm.yaml); companion files (command line, "
                   "env file) sit beside it, named after its stem.")
@click.option("--force", is_flag=True, help="Overwrite existing regular files.")
@_format_option
def export(server: str, from_plan: str | None, server_version: str | None, target_path: str | None,
           draft_path: str | None, output: str, force: bool, k: int | None, task: str, fmt: str,
           **flags: Any) -> None:
    """Write the server configuration for a plan (vLLM, SGLang, llama.cpp, TensorRT-LLM, transformers)."""
    from pathlib import Path

    from planner.atomic import check_target
    from planner.exports import check_server, export_plan, output_name, plan_from_json, read_plan_file, write_export
    from planner.exports.replan import PLANNING_FLAGS, flag_names, replan_settings

    check_server(server)
    folder, name = output_name(output)
    check_target(folder / name, force)  # before planning: an existing -o is refused at once
    ctx = click.get_current_context()
    values = {"k": k, "task": task, **flags}
    given = {key: values[key] for key in PLANNING_FLAGS
             if ctx.get_parameter_source(key) not in (None, click.core.ParameterSource.DEFAULT)}
    if from_plan:
        data = read_plan_file(from_plan)
        if given:
            k, task, flags = replan_settings(data, given)
            click.echo(f"re-planning {from_plan} with {flag_names(given)}", err=True)
            data = _plan_for_export(server, k, task, flags)
    else:
        data = _plan_for_export(server, k, task, flags)
    result = export_plan(plan_from_json(data), server, server_version, target_path=target_path,
                         draft_path=draft_path, main_file=name)
    written = write_export(result, folder, force=force)
    data = {"server": result.server, "line": result.line, "summary": result.summary.splitlines(),
            "files": [str(Path(p)) for p in written], "replanned_with": flag_names(given) if from_plan and given else None}
    _emit(data, fmt, lambda d: click.echo("\n".join([*d["summary"], "wrote " + ", ".join(d["files"])])))


_SERVER_ENGINE = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp", "trtllm": "trtllm", "hf": "hf"}


def _plan_for_export(server: str, k: int | None, task: str, flags: dict[str, Any]) -> dict[str, Any]:
    """Plan from flags: estimate when a draft is named, else the best fitting recommendation."""
    from planner.outputs.plan_view import estimate_to_dict, recommendation_to_dict
    from planner.plan import EstimateInputs, RecommendInputs
    from planner.plan import estimate as run_estimate
    from planner.plan import recommend as run_recommend
    from planner.requests import FitInputs

    if not flags.get("target") or not flags.get("gpu"):
        raise SpecplanError("give --from-plan FILE, or --target and --gpu to plan now")
    flags = {**flags, "engine": flags.get("engine") or _SERVER_ENGINE.get(server, "auto")}
    if flags.get("draft"):
        fit = FitInputs(**flags, **({"k": k} if k is not None else {}))
        return estimate_to_dict(run_estimate(EstimateInputs(fit, k_given=k is not None, task=task)))
    plan_flags = {key: v for key, v in flags.items() if key not in ("draft", "draft_precision", "allow_tokenizer_mismatch")}
    return recommendation_to_dict(run_recommend(RecommendInputs(FitInputs(**plan_flags), task=task)), task, "latency")


@main.command()
@_format_option
def detect(fmt: str) -> None:
    """List this machine's NVIDIA GPUs (NVML) and their catalogue match. Exit 3 without a GPU."""
    from planner.calibration.nvml import detect as run_detect
    from planner.calibration.nvml import detect_to_dict
    from planner.outputs.calibration_view import print_detect_table

    _emit(detect_to_dict(run_detect()), fmt, print_detect_table)


@main.command()
@click.option("--target", required=True, help="Target: a local folder (or a catalogue name with --random-weights).")
@click.option("--draft", required=True, help="Draft: a local folder (or a catalogue name with --random-weights).")
@click.option("--random-weights", is_flag=True, help="Build the models from their config.json with random weights (timing only).")
@click.option("--trust-remote-code", is_flag=True, help="Allow model code from the model folder (off unless asked).")
@click.option("--budget-s", type=float, default=120.0, show_default=True, help="Time budget for the whole probe.")
@click.option("--prompts", type=click.Path(dir_okay=False), default=None, help="JSONL or text file of prompts.")
@click.option("--temperature", type=float, default=0.7, show_default=True, help="Sampling temperature (0: greedy only).")
@click.option("--k-max", type=int, default=8, show_default=True, help="Longest draft to verify and to run rounds with.")
@click.option("--batch-sizes", default="1,4", show_default=True, help="Batch sizes of the timing grid.")
@click.option("--contexts", default="128,512", show_default=True, help="Cached lengths of the timing grid.")
@click.option("--max-new-tokens", type=int, default=64, show_default=True, help="Tokens generated per prompt in rounds.")
@click.option("--device", default="auto", show_default=True, help="auto, cuda, cuda:N or cpu.")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True)
@click.option("--gpu", default=None, help="Catalogue GPU of this machine, for the eta fit (default: NVML match).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Calibration file to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def probe(output: str, force: bool, batch_sizes: str, contexts: str, prompts: str | None, **flags: Any) -> None:
    """Time the real pair on this machine and run real speculative rounds; write a calibration file."""
    from planner.calibration.probe import ProbeConfig, read_prompts, run_probe
    from planner.outputs.calibration_view import print_calibration_summary, progress_printer

    if not force and __import__("os").path.exists(output):
        raise SpecplanError(f"{output} exists; pass --force to overwrite it")
    cfg = ProbeConfig(**flags, batch_sizes=_ints(batch_sizes, "--batch-sizes"), contexts=_ints(contexts, "--contexts"),
                      prompts=read_prompts(prompts))
    if cfg.k_max < 1 or cfg.k_max > 64:
        raise SpecplanError(f"--k-max must be between 1 and 64 (got {cfg.k_max})")
    with progress_printer() as progress:
        cfg.progress = progress
        cal = run_probe(cfg, output, force=True)
    print_calibration_summary(cal, output)


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SpecplanError(f"{flag} expects comma-separated integers (got {text!r})") from None
    if not values or min(values) < 0:
        raise SpecplanError(f"{flag} expects non-negative integers (got {text!r})")
    return values


@main.command()
@click.option("--vllm-metrics", default=None, help="vLLM /metrics URL or a saved copy (the scrape after the window).")
@click.option("--vllm-metrics-before", default=None, help="A scrape from before the window (for counter deltas).")
@click.option("--llamacpp", "llamacpp_files", multiple=True, type=click.Path(dir_okay=False),
              help="llama.cpp server responses (JSON), server log, or llama-speculative output; repeatable.")
@click.option("--target", required=True, help="Target model the server ran (catalogue name or path).")
@click.option("--draft", required=True, help="Draft model the server ran.")
@click.option("--k", "k", type=int, default=None, help="Draft tokens per step the server used (num_speculative_tokens / --draft-max).")
@click.option("--model-name", default=None, help="vLLM model_name label to keep (when one server serves several).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Calibration file to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def calibrate(vllm_metrics: str | None, vllm_metrics_before: str | None, llamacpp_files: tuple[str, ...], target: str,
              draft: str, k: int | None, model_name: str | None, output: str, force: bool) -> None:
    """Turn a running server's acceptance counters into a calibration file."""
    from planner.calibration import server_metrics as sm
    from planner.calibration.schema import write_calibration
    from planner.outputs.calibration_view import print_calibration_summary

    if bool(vllm_metrics) == bool(llamacpp_files):
        raise SpecplanError("give either --vllm-metrics or --llamacpp")
    if vllm_metrics:
        before = sm.read_text_source(vllm_metrics_before) if vllm_metrics_before else None
        cal = sm.vllm_calibration(before, sm.read_text_source(vllm_metrics), k, target, draft, model_name=model_name)
    else:
        texts = [sm.read_text_source(f) for f in llamacpp_files]
        cal = sm.llamacpp_calibration(texts, k, target, draft, ", ".join(llamacpp_files))
    write_calibration(cal, output, force=force)
    print_calibration_summary(cal, output)


if __name__ == "__main__":  # pragma: no cover
    main()
