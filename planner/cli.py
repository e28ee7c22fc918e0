"""specplan command line: parses flags, calls the planner, prints the result.

Exit codes, the same for every command:

* 0: done (and, where a plan is made, something fits).
* 1: the answer is "no": fit/estimate: the configuration does not fit; recommend/report:
  no candidate fits (report still writes its file); validate: a target is missed (a median
  |error| over its --max-*-error, or a run that did not gain predicted at 1.05x or more).
* 2: bad input (flags, files, names): one line on stderr.
* 3: this machine lacks what the command needs: no NVIDIA GPU (detect, --gpu local), no torch (probe).
* 4: an unexpected internal error (a bug): one line; `specplan --debug ...` or SPECPLAN_DEBUG=1
  prints the traceback.
* 130: interrupted (Ctrl-C).
* 141: the reader of stdout went away (e.g. `specplan models | head`); nothing more is printed.

Every command that prints data takes --format table|json|yaml; commands that write files
print a summary of what they wrote in that format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from planner.cli_errors import DEBUG_ENV, EXIT_DOES_NOT_FIT
from planner.cli_errors import ErrorHandlingGroup as _Group
from planner.cli_calibration import calibrate, detect, probe
from planner.cli_options import (_BATCH, _CONTEXT, _GPUS, _K, _MEMORY_GIB, _MIN_GIB, _PRICE, _TOP, _UNIT, _calibration, _tree,
                                 _draft, _emit, _format_option, _hardware, _options, _rank_method, _task)
from planner.cli_types import NAME, Float, Int

__all__ = ["main"]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog="Exit codes: 0 success; 1 does not fit (nothing fits); 2 bad input (one line on stderr); 3 no GPU (or no torch "
                    "for probe); 4 internal error (--debug shows the traceback); 130 interrupted.")
@click.version_option(package_name="specplan", prog_name="specplan")
@click.option("--debug", is_flag=True, help=f"Print the traceback of an internal error (also: {DEBUG_ENV}=1).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Plan speculative-decoding deployments: catalogues, VRAM fit, speed and configs."""
    if debug and isinstance(ctx.command, _Group):
        ctx.command.debug = True




@main.command()
@_hardware
@_draft
@click.option("--k", "k", type=_K, default=5, show_default=True,
              help="Draft tokens per round (count; sizes the verification buffers).")
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
@click.option("--k", "k", type=_K, default=None, help="Draft tokens per round (count; default: the best k).")
@click.option("--alpha", type=_UNIT, default=None, help="Per-token acceptance probability, a fraction 0..1.")
@click.option("--acceptance-rate", type=_UNIT, default=None,
              help="Accepted / drafted tokens as servers report it, a fraction 0..1 (needs the --k it was measured "
                   "at; llama.cpp: --k is n-max and the rate is converted through its p-min loop).")
@click.option("--drafted-per-round", type=Float(0, 64, low_open=True), default=None,
              help="Mean drafted tokens per round (tokens) measured with --acceptance-rate; fits the draft-confidence "
                   "model too.")
@click.option("--drafted", type=Int(1, 2**53), default=None, help="Drafted tokens counted by the server (count; llama.cpp n_drafted).")
@click.option("--accepted", type=Int(0, 2**53), default=None, help="Accepted draft tokens (count; llama.cpp n_accept).")
@click.option("--rounds", type=Int(1, 2**53), default=None,
              help="Verification rounds with a draft (count); with --drafted gives drafted per round.")
@click.option("--mean-accepted-length", type=Float(1, 65), default=None,
              help="Measured tokens per round, the bonus token included (tokens; vLLM/SGLang mean acceptance "
                   "length), converted through the engine's draft loop at --k.")
@click.option("--p-min", type=_UNIT, default=None,
              help="Draft confidence threshold, a probability 0..1 (llama.cpp p-min; transformers "
                   "assistant_confidence_threshold); default: the engine's, as exports write it.")
@click.option("--server-version", "loop_version", default=None, type=NAME,
              help="Engine release whose draft loop and kernel line to price (0.6.7, b4500, llama-speculative; "
                   "default: the newest line).")
@_tree
@_task
@_calibration
@_format_option
def estimate(fmt: str, k: int | None, alpha: float | None, acceptance_rate: float | None, task: str,
             calibration: str | None, drafted_per_round: float | None, drafted: int | None, accepted: int | None,
             rounds: int | None, mean_accepted_length: float | None, p_min: float | None, loop_version: str | None,
             num_steps: int | None, topk: int | None, num_draft_tokens: int | None, tree: str | None,
             **flags: Any) -> int:
    """Predict pass times, c, r, alpha, speedup and best k for one configuration."""
    from planner.outputs.plan_view import estimate_to_dict, print_estimate
    from planner.plan import EstimateInputs
    from planner.plan import estimate as run_estimate
    from planner.requests import FitInputs

    fit_inputs = FitInputs(**flags, **({"k": k} if k is not None else {}))
    result = run_estimate(EstimateInputs(fit_inputs, k_given=k is not None, alpha=alpha,
                                         acceptance_rate=acceptance_rate, task=task, calibration=calibration,
                                         p_min=p_min, server_version=loop_version,
                                         drafted_per_round=drafted_per_round, drafted=drafted, accepted=accepted,
                                         rounds=rounds, mean_accepted_length=mean_accepted_length,
                                         num_steps=num_steps, topk=topk, num_draft_tokens=num_draft_tokens, tree=tree))
    data = estimate_to_dict(result)
    _emit(data, fmt, print_estimate)
    return 0 if data["fit"]["fits"] else EXIT_DOES_NOT_FIT


_ranking = _options(
    click.option("--objective", type=click.Choice(["latency", "throughput", "cost"]), default="latency",
                 show_default=True,
                 help="Rank by tokens/s per sequence, total tokens/s of the batch, or tokens per USD (needs --gpu-hour-usd)."),
    click.option("--top", type=_TOP, default=10, show_default=True,
                 help="Candidate rows to show (count; the no-speculation rows are added)."),
    click.option("--gpu-hour-usd", type=_PRICE, default=None,
                 help="Price of one GPU in USD per GPU-hour: adds tokens per USD (needed by --objective cost)."),
    click.option("--server-version", default=None, type=NAME,
                 help="Engine release whose draft loop and kernel line to price (0.6.7, b4500; default: the newest)."),
)


def _exit_for(candidates: list[dict[str, Any]]) -> int:
    return 0 if any(c["fits"] for c in candidates) else EXIT_DOES_NOT_FIT


@main.command()
@_hardware
@_task
@_ranking
@_rank_method
@click.option("--alpha", type=_UNIT, default=None,
              help="Per-token acceptance for every proposer, a fraction 0..1 (default: each one's prior).")
@_calibration
@_format_option
def recommend(fmt: str, task: str, objective: str, top: int, gpu_hour_usd: float | None, alpha: float | None,
              calibration: str | None, server_version: str | None, method: str | None, **flags: Any) -> int:
    """Rank drafts, draft precisions, k and GPU counts for a target (with "no speculation" as a row).

    Exit 1 when no candidate fits.
    """
    from planner.outputs.plan_view import print_recommendation, recommendation_to_dict
    from planner.plan import RecommendInputs
    from planner.plan import recommend as run_recommend
    from planner.requests import FitInputs

    if alpha is not None:
        from planner.speedup import check_alpha

        check_alpha(alpha)
    result = run_recommend(RecommendInputs(FitInputs(**flags), task=task, objective=objective,  # type: ignore[arg-type]
                                           top=top, gpu_hour_usd=gpu_hour_usd, alpha=alpha,
                                           calibration=calibration, server_version=server_version, method=method))
    data = recommendation_to_dict(result, task, objective)
    _emit(data, fmt, print_recommendation)
    return _exit_for(data["candidates"])


def _refuse_filters_with_sources(**filters: Any) -> None:
    """--sources shows one named entry: a listing filter beside it would be silently ignored."""
    given = [f"--{name.replace('_', '-')}" for name, value in filters.items() if value is not None]
    if given:
        raise click.UsageError(f"--sources shows one entry; drop {', '.join(given)}")


def _catalog_filters(vendor_help: str, family_help: str) -> Callable[[Any], Any]:
    return _options(click.option("--vendor", default=None, type=NAME, help=vendor_help),
                    click.option("--family", default=None, type=NAME, help=family_help))


@main.command()
@_catalog_filters("Only this vendor: nvidia, amd, apple.", "Only this architecture, e.g. hopper, ada, ampere, cdna3, apple-m4.")
@click.option("--min-memory", type=_MIN_GIB, default=None, help="Only GPUs with at least this much memory, GiB.")
@click.option("--sources", "sources_of", metavar="ID", type=NAME, default=None,
              help="Show one GPU (id, name or alias) figure by figure: value, the source items that give it, weak ones.")
@_format_option
def gpus(vendor: str | None, family: str | None, min_memory: float | None, sources_of: str | None, fmt: str) -> None:
    """List the accelerators in the catalogue, or one entry's sources."""
    if sources_of is not None:
        from planner.outputs.sources_view import gpu_sources, print_gpu_sources

        _refuse_filters_with_sources(vendor=vendor, family=family, min_memory=min_memory)
        _emit(gpu_sources(sources_of), fmt, print_gpu_sources)
        return
    from planner.outputs.catalog_view import list_gpus, print_gpu_table

    _emit(list_gpus(vendor, family, min_memory), fmt, print_gpu_table)


@main.command()
@_catalog_filters("Only this publisher: the Hugging Face organisation (meta-llama, Qwen, google...).",
                  "Only this model family, e.g. llama, qwen, gemma.")
@click.option("--min-memory", type=_MIN_GIB, default=None, help="Only models whose bf16 weights take at least this many GiB.")
@click.option("--tokenizer", type=NAME, default=None, help="Only models with this tokenizer name (the drafts a target can use).")
@click.option("--sources", "sources_of", metavar="ID", type=NAME, default=None,
              help="Show one model (Hub id or alias): its source items and computed vs published parameter counts.")
@_format_option
def models(vendor: str | None, family: str | None, min_memory: float | None, tokenizer: str | None,
           sources_of: str | None, fmt: str) -> None:
    """List the models in the catalogue, or one entry's sources."""
    if sources_of is not None:
        from planner.outputs.sources_view import model_sources, print_model_sources

        _refuse_filters_with_sources(vendor=vendor, family=family, min_memory=min_memory, tokenizer=tokenizer)
        _emit(model_sources(sources_of), fmt, print_model_sources)
        return
    from planner.outputs.catalog_view import list_models, print_model_table

    _emit(list_models(vendor, family, min_memory, tokenizer), fmt, print_model_table)


@main.command()
@click.option("--method", default=None, type=NAME, metavar="METHOD", help="Only this method: eagle, eagle3 or mtp.")
@click.option("--target", default=None, type=NAME,
              help="Only the heads trained for this catalogue release (Hub id or alias).")
@click.option("--sources", "sources_of", metavar="ID", type=NAME, default=None,
              help="Show one head (Hub id or alias): its layer figures, computed vs published size, source items.")
@_format_option
def heads(method: str | None, target: str | None, sources_of: str | None, fmt: str) -> None:
    """List the published EAGLE/EAGLE-3 heads and MTP checkpoints, or one entry's sources."""
    if sources_of is not None:
        from planner.outputs.heads_view import head_sources, print_head_sources

        _refuse_filters_with_sources(method=method, target=target)
        _emit(head_sources(sources_of), fmt, print_head_sources)
        return
    from planner.outputs.heads_view import list_heads, print_heads_table

    _emit(list_heads(method, target), fmt, print_heads_table)


@main.command()
@click.option("--measurements", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A measurements YAML of the same shape (default: the packaged public set); given alone, it is "
                   "checked without the packaged speculative set.")
@click.option("--speculative", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A speculative set shaped like speculative_more.yaml (rows with a specplan: block; default: "
                   "the packaged one).")
@click.option("--max-median-error", type=Float(0), default=0.15, show_default=True,
              help="Exit 1 when the decode tokens/s median |relative error| exceeds this fraction (0..1).")
@click.option("--max-prior-error", type=Float(0), default=0.15, show_default=True,
              help="Exit 1 when the prior-only speedup median |relative error| exceeds this fraction.")
@click.option("--max-measured-error", type=Float(0), default=0.10, show_default=True,
              help="Exit 1 when the speedup median |relative error| with measured acceptance exceeds this fraction.")
@click.option("--max-r-error", type=Float(0), default=0.15, show_default=True,
              help="Exit 1 when the verify ratio r median |relative error| exceeds this fraction.")
@click.option("--max-method-measured-error", type=Float(0), default=0.15, show_default=True,
              help="Exit 1 when a head / MTP / lookup method's speedup median |relative error| with the published "
                   "acceptance exceeds this fraction.")
@click.option("--max-method-prior-error", type=Float(0), default=0.20, show_default=True,
              help="Exit 1 when a method's prior-only speedup median |relative error| exceeds this fraction.")
@click.option("--max-batched-error", type=Float(0), default=0.15, show_default=True,
              help="Exit 1 when the speedup median |relative error| of rows at batch > 1 (prior-only, or with the "
                   "published acceptance) exceeds this fraction.")
@_format_option
def validate(measurements: str | None, speculative: str | None, max_median_error: float, max_prior_error: float,
             max_measured_error: float, max_r_error: float, max_method_measured_error: float,
             max_method_prior_error: float, max_batched_error: float, fmt: str) -> int:
    """Compare predictions with published measurements, per row, per engine and in total.

    Exit 1 when a target is missed (a median over its limit, or a run that did not gain predicted
    at 1.05x or more). Progress goes to stderr in a terminal.
    """
    from planner.outputs.render import progress_bar
    from planner.outputs.validate_view import print_validation_table, validation_to_dict
    from planner.validation import Targets, load_measurements, load_speculative_more
    from planner.validation import validate as run_validation

    doc = load_measurements(measurements)
    more = load_speculative_more(speculative) if speculative or not measurements else None
    with progress_bar("validate") as progress:
        report = run_validation(doc, more, progress=progress)
    targets = Targets(decode_median=max_median_error, prior_median=max_prior_error,
                      measured_median=max_measured_error, r_median=max_r_error,
                      method_measured_median=max_method_measured_error, method_prior_median=max_method_prior_error,
                      batched_median=max_batched_error)
    data = validation_to_dict(report, targets)
    _emit(data, fmt, print_validation_table)
    return 0 if data["summary"]["targets_met"] else EXIT_DOES_NOT_FIT


def _print_written(d: dict[str, Any]) -> None:
    """The table form of a written-files summary: the summary line, then what was written."""
    if d.get("summary"):
        click.echo(d["summary"])
    click.echo("wrote " + ", ".join(d["wrote"]) + (f": {d['verdict']}" if d.get("verdict") else ""))


@main.command()
@_hardware
@_task
@_ranking
@_rank_method
@_calibration
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML file to write (path).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@_format_option
def report(task: str, objective: str, top: int, gpu_hour_usd: float | None, calibration: str | None, output: str,
           force: bool, fmt: str, server_version: str | None, method: str | None, **flags: Any) -> int:
    """Write a self-contained HTML report (inline CSS and SVG, no scripts) of a recommendation.

    Exit 1 when no candidate fits (the report is still written).
    """
    from planner.atomic import write_text_atomic
    from planner.inputs import check_output
    from planner.outputs.report import build_report_data, render_report
    from planner.plan import RecommendInputs
    from planner.requests import FitInputs

    check_output(output, force)
    data = build_report_data(RecommendInputs(FitInputs(**flags), task=task, objective=objective,  # type: ignore[arg-type]
                                             top=top, gpu_hour_usd=gpu_hour_usd, calibration=calibration,
                                             server_version=server_version, method=method))
    write_text_atomic(output, render_report(data), force=force)
    _emit({"wrote": [output], "verdict": data["verdict"], "estimate": data["estimate"],
           "recommendation": data["question"]}, fmt, _print_written)
    return _exit_for(data["candidates"])


@main.command()
@click.option("--server", required=True,
              type=click.Choice(["vllm", "sglang", "llamacpp", "trtllm", "hf", "ollama", "tgi"]),
              help="Server to write the configuration for.")
@click.option("--from-plan", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A plan written by `recommend --format json` or `estimate --format json`; planning flags "
                   "given with it re-plan from its settings.")
@click.option("--target", type=NAME, default=None,
              help="Target model: Hub id, catalogue name or a folder (without --from-plan).")
@click.option("--gpu", type=NAME, default=None, help="GPU: catalogue id, name or alias, or cpu for this machine's CPU (without --from-plan).")
@click.option("--gpus", type=_GPUS, default=1, show_default=True, help="Number of GPUs the server runs on (tensor parallel).")
@click.option("--precision", type=NAME, default=None, help="Target weight format, e.g. bf16, fp8, int4-awq, q4_k_m (default: the engine's).")
@click.option("--kv-precision", type=NAME, default=None, help="KV-cache element format: fp16 (default), fp8, q8_0, q4_0.")
@click.option("--batch", type=_BATCH, default=1, show_default=True, help="Concurrent sequences decoded together (count).")
@click.option("--context", type=_CONTEXT, default=None, help="Tokens per sequence, prompt + output (default: 4096 or the model's maximum).")
@click.option("--engine", type=NAME, default=None, help="Engine to plan with (default: the server's own).")
@click.option("--memory-gib", type=_MEMORY_GIB, default=None, help="Memory of one GPU in GiB, if not the catalogue's.")
@_draft
@click.option("--k", "k", type=_K, default=None, help="Draft tokens per round (count; default: the best k).")
@_task
@click.option("--server-version", default=None, type=NAME,
              help="Server release the config is for, as the server prints it (0.9.2; llama.cpp: b8672 or its "
                   "--version line).")
@click.option("--target-path", default=None, type=NAME,
              help="Checkpoint the server should load for the target (folder, GGUF file).")
@click.option("--draft-path", default=None, type=NAME, help="Checkpoint the server should load for the draft.")
@click.option("--head-path", default=None, type=NAME,
              help="Checkpoint the server should load for the EAGLE head or MTP module (folder, GGUF file).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Main file, written under exactly this name (e.g. vllm.yaml); companion files (command line, "
                   "env file) sit beside it, named after its stem.")
@click.option("--force", is_flag=True, help="Overwrite existing regular files.")
@_format_option
def export(server: str, from_plan: str | None, server_version: str | None, target_path: str | None,
           draft_path: str | None, head_path: str | None, output: str, force: bool, k: int | None, task: str,
           fmt: str, **flags: Any) -> None:
    """Write the server configuration for a plan (vLLM, SGLang, llama.cpp, TensorRT-LLM, transformers)."""
    from pathlib import Path

    from planner.atomic import check_target
    from planner.exports import (check_server, export_plan, output_name, plan_from_json, plan_serves, read_plan_file,
                                 write_export)
    from planner.exports.replan import PLANNING_FLAGS, flag_names, plan_for_export, replan_settings

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
            data = plan_for_export(server, k, task, flags)
    else:
        data = plan_for_export(server, k, task, flags)
    result = export_plan(plan_from_json(data, plan_serves(server, server_version)), server, server_version,
                         target_path=target_path, draft_path=draft_path, head_path=head_path, main_file=name)
    written = write_export(result, folder, force=force)
    data = {"server": result.server, "line": result.line, "summary": result.summary.splitlines(),
            "wrote": [str(Path(p)) for p in written], "replanned_with": flag_names(given) if from_plan and given else None}
    _emit(data, fmt, lambda d: click.echo("\n".join([*d["summary"], "wrote " + ", ".join(d["wrote"])])))


for _command in (detect, probe, calibrate):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
