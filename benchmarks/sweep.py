"""Throughput of the vectorised cost model, and cold start of the CLI.

Run from the repository root:

    python benchmarks/sweep.py [--repeats 5] [--gpu-chunk 0] [--cold-runs 7] [--skip-cold]

Part 1 prices every catalogue GPU x every compatible (target, draft) pair x 3 draft
precisions x 6 batch sizes x k = 1..16 with one broadcast call chain of
planner.search.price_rounds (no Python loop per configuration) and reports
configurations per second on one core. Building the profiles is setup and is timed
on its own. Part 2 times `specplan recommend ...` started from a fresh interpreter.

It prints figures next to their goals and never fails on time.
"""

from __future__ import annotations

import os

# Keep the environment the user had, for the cold-start subprocesses, then pin every
# threading library numpy may load to one thread (elementwise ufuncs are single-threaded
# anyway; this keeps BLAS from spinning up workers behind our back).
_USER_ENV = dict(os.environ)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from planner.catalog.loading import hardware_catalog, model_catalog  # noqa: E402
from planner.catalog.precisions import kv_format, weight_format  # noqa: E402
from planner.costmodel import device_profile, model_profile, stack_profiles  # noqa: E402
from planner.engines import engines  # noqa: E402
from planner.footprint import parameter_counts  # noqa: E402
from planner.priors import alpha_prior  # noqa: E402
from planner.search import price_rounds  # noqa: E402

BATCHES = (1, 4, 16, 64, 256, 1024)
K_VALUES = tuple(range(1, 17))
CONTEXT_TOKENS = 2048  # cached tokens seen by every decode / verify pass
TARGET_FORMAT = "bf16"
KV_FORMAT = "fp16"
TASK = "chat"
PAYS = 1.05  # planner.plan.MIN_WORTHWHILE_SPEEDUP
GOAL_CONFIGS_PER_S = 20_000_000  # issue 9: per-operator pricing must keep the sweep at >= 20M per second
GOAL_COLD_S = 0.6
CLI_ARGS = ("recommend", "--target", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "4", "--format", "json")
# Issue 12: every method side by side (draft models, EAGLE / EAGLE-3 heads, n-gram, suffix, no speculation)
# over every GPU count up to 8, goal < 1 s from a fresh process.
GOAL_METHODS_S = 1.0
METHODS_ARGS = ("recommend", "--target", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--gpus", "8",
                "--method", "all", "--format", "json")
COLD_COMMANDS = ((CLI_ARGS, GOAL_COLD_S), (METHODS_ARGS, GOAL_METHODS_S))
# Above this many float64 per full-size array, the GPU axis is priced in chunks.
_AUTO_CHUNK_ELEMENTS = 8_000_000
SPOT_CHECKS = 20


# --- part 1: the sweep --------------------------------------------------------------------------------


def build_sweep() -> dict:
    """Profiles for every GPU, pair and draft precision, stacked into broadcastable shapes."""
    vllm = engines()["vllm"]
    llamacpp = engines()["llamacpp"]
    gpus = list(hardware_catalog())
    models = list(model_catalog())
    size = {m.id: parameter_counts(m).total for m in models}
    pairs = [(t, d) for t in models for d in models if d.tokenizer == t.tokenizer and size[d.id] < size[t.id]]
    formats = [weight_format(name) for name in vllm.draft_precisions]
    target_fmt, kv = weight_format(TARGET_FORMAT), kv_format(KV_FORMAT)

    # One profile per distinct model/format, reused by every pair that needs it.
    target_cache = {t.id: model_profile(t, target_fmt, kv) for t, _ in pairs}
    draft_cache = {(d.id, f.name): model_profile(d, f, kv) for _, d in pairs for f in formats}
    targets = [target_cache[t.id] for t, _ in pairs]
    drafts = [draft_cache[(d.id, f.name)] for _, d in pairs for f in formats]
    alpha = np.array([[alpha_prior(t, d, f, TASK).mid for f in formats] for t, d in pairs])
    # vLLM's cost figures where vLLM runs, llama.cpp's elsewhere (Apple).
    devices = [device_profile(g, vllm if g.vendor in vllm.vendors else llamacpp, 1) for g in gpus]

    p, f = len(pairs), len(formats)
    return {
        "gpus": gpus, "pairs": pairs, "formats": formats, "devices": devices,
        "target": stack_profiles(targets, (1, p, 1, 1, 1)),
        "draft": stack_profiles(drafts, (1, p, f, 1, 1)),
        "alpha": alpha.reshape(1, p, f, 1, 1),
        "batch": np.asarray(BATCHES, dtype=np.float64).reshape(1, 1, 1, -1, 1),
        "k": np.asarray(K_VALUES).reshape(1, 1, 1, 1, -1),
        "context": float(CONTEXT_TOKENS),
        "models": len(models), "profiles": len(target_cache) + len(draft_cache) + len(devices),
    }


def stack_devices(devices: list, chunk: int) -> list:
    """DeviceProfiles stacked along the GPU axis, ``chunk`` GPUs per block."""
    return [stack_profiles(devices[i:i + chunk], (len(devices[i:i + chunk]), 1, 1, 1, 1))
            for i in range(0, len(devices), chunk)]


def price_all(s: dict, device_blocks: list) -> list:
    """One broadcast price_rounds call per GPU block (one block unless chunked)."""
    return [price_rounds(s["target"], s["draft"], dev, dev, s["batch"], s["context"], s["k"], s["alpha"])
            for dev in device_blocks]


def spot_check(s: dict, speed: np.ndarray, n: int = 0) -> float:
    """Re-price a few random configurations one by one (scalar profiles) against the sweep."""
    rng = np.random.default_rng(0)
    vllm, llamacpp = engines()["vllm"], engines()["llamacpp"]
    target_fmt, kv = weight_format(TARGET_FORMAT), kv_format(KV_FORMAT)
    worst = 0.0
    for _ in range(n or SPOT_CHECKS):
        gi, pi, fi, bi, ki = (int(rng.integers(x)) for x in speed.shape)
        gpu, (t, d), fmt = s["gpus"][gi], s["pairs"][pi], s["formats"][fi]
        dev = device_profile(gpu, vllm if gpu.vendor in vllm.vendors else llamacpp, 1)
        one = price_rounds(model_profile(t, target_fmt, kv), model_profile(d, fmt, kv), dev, dev,
                           BATCHES[bi], s["context"], K_VALUES[ki], alpha_prior(t, d, fmt, TASK).mid)
        worst = max(worst, abs(float(one.speedup) / speed[gi, pi, fi, bi, ki] - 1.0))
    return worst


def run_sweep(repeats: int, gpu_chunk: int) -> None:
    t0 = time.perf_counter()
    s = build_sweep()
    t_profiles = time.perf_counter() - t0
    g, p, f, b, k = len(s["gpus"]), len(s["pairs"]), len(s["formats"]), len(BATCHES), len(K_VALUES)
    configs = g * p * f * b * k
    if gpu_chunk <= 0:
        per_gpu = p * f * b * k
        gpu_chunk = max(1, min(g, _AUTO_CHUNK_ELEMENTS // per_gpu))
    t1 = time.perf_counter()
    blocks = stack_devices(s["devices"], gpu_chunk)
    t_setup = t_profiles + time.perf_counter() - t1

    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        prices = price_all(s, blocks)
        times.append(time.perf_counter() - t)
    best = min(times)

    # Sanity figures from the last repeat: best k per (gpu, pair, precision, batch) group.
    speed = np.concatenate([np.broadcast_to(r.speedup, (r.speedup.shape[0], p, f, b, k)) for r in prices])
    finite = np.isfinite(speed).all()
    best_s = speed.max(axis=-1)
    best_k = np.asarray(K_VALUES)[speed.argmax(axis=-1)]
    pays = best_s > PAYS
    spot = spot_check(s, speed)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    engines_used = sorted({("llamacpp" if gp.vendor not in engines()["vllm"].vendors else "vllm") for gp in s["gpus"]})
    print("== Part 1: vectorised sweep (cost model, one core) ==")
    print(f"  GPUs                      {g}  (engine cost figures: {', '.join(engines_used)}; 1 GPU each)")
    print(f"  (target, draft) pairs     {p}  (from {s['models']} models: same tokenizer, draft smaller)")
    print(f"  draft precisions          {f}  ({', '.join(x.name for x in s['formats'])}; target {TARGET_FORMAT}, KV {KV_FORMAT})")
    print(f"  batch sizes               {b}  {BATCHES}")
    print(f"  k                         {k}  (1..{K_VALUES[-1]})")
    print(f"  context                   {CONTEXT_TOKENS} cached tokens; alpha = each pair's '{TASK}' prior (mid)")
    print(f"  configurations            {configs:,}  = {g} x {p} x {f} x {b} x {k}")
    print(f"  GPU blocks per pass       {len(blocks)}  ({gpu_chunk} GPUs per price_rounds call)")
    print(f"  setup (profiles + stack)  {t_setup:.3f} s  ({s['profiles']} profiles; not counted below)")
    print(f"  pricing, best of {len(times)}       {best:.4f} s  (all runs: {', '.join(f'{x:.4f}' for x in times)})")
    print(f"  configurations per second {configs / best:,.0f}   goal > {GOAL_CONFIGS_PER_S:,} per second on one core"
          f"  [{'met' if configs / best > GOAL_CONFIGS_PER_S else 'NOT met'}]")
    print(f"  peak RSS of this process  {peak_rss_mib:,.0f} MiB")
    print(f"  all speedups finite       {bool(finite)}")
    print(f"  spot check                {SPOT_CHECKS} random configurations priced one at a time: "
          f"max relative difference {spot:.1e}")
    print(f"  groups where speculation pays (best-k speedup > {PAYS}): {int(pays.sum()):,} of {pays.size:,}"
          f" ({pays.mean():.1%})")
    by_batch = ", ".join(f"B={bb}: {pays[..., i].mean():.0%}" for i, bb in enumerate(BATCHES))
    print(f"    by batch                {by_batch}")
    med = ", ".join(f"B={bb}: {np.median(best_s[..., i]):.2f}x/k={int(np.median(best_k[..., i]))}"
                    for i, bb in enumerate(BATCHES))
    print(f"    median best speedup/k   {med}")


# --- part 2: cold start -------------------------------------------------------------------------------


def _time_command(cmd: list[str], runs: int) -> tuple[list[float], subprocess.CompletedProcess]:
    """Wall times of ``runs`` fresh processes (after one untimed run that warms the file cache)."""
    last = subprocess.run(cmd, capture_output=True, text=True, env=_USER_ENV, cwd=REPO)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        last = subprocess.run(cmd, capture_output=True, text=True, env=_USER_ENV, cwd=REPO)
        times.append(time.perf_counter() - t)
    return times, last


def _cli_commands() -> list[tuple[str, list[str]]]:
    """The installed console script (next to this interpreter), the one on PATH if it is another
    file (a pyenv shim, say), and ``python -m planner.cli`` when neither exists."""
    out = []
    beside = Path(sys.executable).parent / "specplan"
    on_path = shutil.which("specplan")
    if beside.is_file():
        out.append((f"{beside}", [str(beside)]))
    if on_path and (not beside.is_file() or Path(on_path).resolve() != beside.resolve()):
        out.append((f"{on_path} (from PATH)", [on_path]))
    if not out:
        out.append((f"{sys.executable} -m planner.cli", [sys.executable, "-m", "planner.cli"]))
    return out


def run_cold_start(runs: int) -> None:
    print()
    print(f"== Part 2: CLI cold start ({runs} fresh processes each, after one untimed warm-up) ==")
    for args, goal in COLD_COMMANDS:
        print(f"  command: specplan {' '.join(args)}")
        for label, base in _cli_commands():
            times, last = _time_command(base + list(args), runs)
            ok = last.returncode == 0
            if ok:
                try:
                    rows = len(json.loads(last.stdout).get("candidates", []))
                    status = f"exit 0, JSON with {rows} candidates"
                except (ValueError, AttributeError):
                    status = "exit 0, output not JSON"
            else:
                status = f"exit {last.returncode}: {last.stderr.strip().splitlines()[-1:]}"
            med = statistics.median(times)
            print(f"  {label}")
            print(f"    median {med:.3f} s, min {min(times):.3f} s   goal < {goal} s"
                  f"  [{'met' if med < goal else 'NOT met'}]   ({status})")
    floor, _ = _time_command([sys.executable, "-c", "import planner.cli"], runs)
    bare, _ = _time_command([sys.executable, "-c", "pass"], runs)
    print(f"  import floor: python -c 'import planner.cli'   median {statistics.median(floor):.3f} s,"
          f" min {min(floor):.3f} s")
    print(f"  interpreter alone: python -c 'pass'           median {statistics.median(bare):.3f} s,"
          f" min {min(bare):.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="pricing repeats; the best is reported")
    ap.add_argument("--gpu-chunk", type=int, default=0, help="GPUs per price_rounds call (0: automatic)")
    ap.add_argument("--cold-runs", type=int, default=7, help="timed CLI starts")
    ap.add_argument("--skip-cold", action="store_true", help="only the sweep")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs visible; "
          "pricing runs on one core")
    run_sweep(args.repeats, args.gpu_chunk)
    if not args.skip_cold:
        run_cold_start(args.cold_runs)


if __name__ == "__main__":
    main()
