"""Compare engines as users run them: each contender in a fresh process of its own.

A benchmark script (``train.py``, ``generate.py``, ``bert.py``, ``classify.py``)
is both the parent and the child. The parent never imports tinyllm, torch or
NumPy; it starts one child per contender and round, alternating
A, B, A, B, ... over ``--rounds`` rounds, each with the environment the parent
was started with (nothing set for one side only). A child builds its workload,
runs ``--warmup`` untimed steps and ``--steps`` timed ones, and prints one line
``BENCH-RESULT {json}`` with its throughput and, from
``getrusage(RUSAGE_SELF).ru_maxrss`` at its end, its peak resident memory.
The parent reports per contender the median and spread (min-max and the
quartiles) over the rounds, and the ratio of the medians.

Shared inputs (the weights, so both sides start from the same point) are made
once by a ``setup`` child and read by both contenders from a ``.npz`` file
(``allow_pickle=False``).

The float32 matmul peak for MFU is measured in fresh processes of its own
(``python bench/harness.py --matmul-peak numpy|torch``), before and after the
rounds; the best of those is the peak.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

TAG = "BENCH-RESULT "
HERE = os.path.dirname(os.path.abspath(__file__))
# The variables that tune BLAS, OpenMP or the engines: each child reports what it saw.
TUNING_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "KMP_", "GOTO", "TINYLLM_", "NUMBA_", "MALLOC_")


# ----------------------------------------------------------------------------- child side

CHILD_OF = {"tinyllm": ("tinyllm", []), "torch": ("torch", []),
            "tinyllm-np": ("tinyllm", ["--import-numpy-first"])}   # contender -> (child, its extra flags)

def add_arguments(ap: argparse.ArgumentParser, warmup: int = 5, steps: int = 40, rounds: int = 4) -> None:
    """The options every harnessed benchmark takes."""
    ap.add_argument("--rounds", type=int, default=rounds, help="fresh processes per contender (A, B, A, B, ...)")
    ap.add_argument("--warmup", type=int, default=warmup, help="untimed steps at the start of each process")
    ap.add_argument("--steps", type=int, default=steps, help="timed steps in each process")
    ap.add_argument("--import-numpy-first", action="store_true",
                    help="the tinyllm process imports NumPy before tinyllm, as a user's script may")
    ap.add_argument("--contenders", nargs="+", default=["tinyllm", "torch"], choices=list(CHILD_OF),
                    help="who runs, in this order each round; the ratio is of the first two, and each "
                         "further one is also compared with the first two (tinyllm-np: tinyllm whose "
                         "script imports NumPy first, in the same rounds as the others)")
    ap.add_argument("--json", help="also write every child's result and the summary to this file")
    ap.add_argument("--child", choices=["setup", "tinyllm", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)


def add_quick(ap: argparse.ArgumentParser, rounds: int = 2, warmup: int = 1, steps: int = 5) -> None:
    """A ``--quick`` option: a short run to check a benchmark works (not a measurement to quote).
    Read the arguments with :func:`parse` so that it takes effect."""
    ap.set_defaults(quick_settings=dict(rounds=rounds, warmup=warmup, steps=steps))
    ap.add_argument("--quick", action="store_true",
                    help=f"a short check, not a measurement: --rounds {rounds} --warmup {warmup} --steps {steps}")


def parse(ap: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``ap.parse_args(argv)``, with ``--quick`` (see :func:`add_quick`) setting rounds, warmup and steps."""
    args = ap.parse_args(argv)
    if getattr(args, "quick", False) and not args.child:
        for name, value in args.quick_settings.items():
            setattr(args, name, value)
    return args


def tuning_env() -> dict[str, str]:
    """The tuning variables of this process's environment."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(TUNING_PREFIXES)}


START_ENV = tuning_env()   # as the process started: the user's environment, before any library set anything


def import_tinyllm(numpy_first: bool) -> Any:
    """Import tinyllm as a user's script would: after NumPy when ``numpy_first``, else first of all.
    A child must not have loaded NumPy before this call unless ``numpy_first``."""
    if not numpy_first and "numpy" in sys.modules:
        raise RuntimeError("NumPy was loaded before tinyllm: the benchmark's imports are out of order")
    if numpy_first:
        import numpy  # noqa: F401,PLC0415
    import tinyllm  # noqa: PLC0415
    return tinyllm


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def time_steps(step: Callable[[int], Any], warmup: int, steps: int,
               sync: Callable[[], None] = lambda: None) -> list[float]:
    """Run ``step(i)`` for ``warmup`` untimed then ``steps`` timed calls; the seconds of each timed one."""
    for i in range(warmup):
        step(i)
    sync()
    times = []
    for i in range(warmup, warmup + steps):
        t = time.perf_counter()
        step(i)
        sync()
        times.append(time.perf_counter() - t)
    return times


def report(result: dict[str, Any]) -> None:
    """Print a child's result as the one line the parent reads, with its peak memory and environment."""
    out = dict(result)
    out.update(pid=os.getpid(), peak_rss_mib=peak_rss_mib(), env=START_ENV, python=sys.version.split()[0],
               load_1min=os.getloadavg()[0], cpus=os.cpu_count())
    if tuning_env() != START_ENV:   # what a library set for itself when it was imported
        out["env_set_by_libraries"] = {k: v for k, v in tuning_env().items() if START_ENV.get(k) != v}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        out.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    print(TAG + json.dumps(out), flush=True)


def throughput(times: Sequence[float], units_per_step: float) -> dict[str, float]:
    """Units (tokens, sequences) per second over the timed steps, and the median step."""
    return {"per_s": units_per_step * len(times) / sum(times), "median_step_s": statistics.median(times),
            "min_step_s": min(times), "max_step_s": max(times)}


# ----------------------------------------------------------------------------- parent side

@dataclass
class Contender:
    """One side of a comparison: a name and the arguments of its child process."""
    name: str
    argv: list[str]
    results: list[dict] = field(default_factory=list)


def run_child(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float | None = None) -> dict:
    """Run ``python argv...`` in a fresh process; return the dict of its ``BENCH-RESULT`` line."""
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, check=False,
                          env=dict(os.environ) if env is None else env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"child {' '.join(argv)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(TAG):])


def alternate(contenders: Sequence[Contender], rounds: int, log: Callable[[str], None] = print,
              timeout: float | None = None) -> None:
    """Run every contender once per round, in the same order each round (A, B, A, B, ...)."""
    for r in range(rounds):
        for c in contenders:
            res = run_child(c.argv, timeout=timeout)
            c.results.append(res)
            log(f"  round {r + 1}/{rounds} {c.name:8} " + ", ".join(
                f"{k} {res[k]:.4g}" for k in ("per_s", "peak_rss_mib") if isinstance(res.get(k), (int, float))))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the quartiles (inclusive method) of some measurements."""
    v = sorted(values)
    q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else (v[0], v[0], v[0])
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "q1": q1, "q3": q3, "n": len(v)}


def summarize(contenders: Sequence[Contender], key: str = "per_s") -> dict[str, Any]:
    """Per contender the spread of ``key`` and of peak RSS; the ratio of the first two medians."""
    out: dict[str, Any] = {}
    for c in contenders:
        out[c.name] = {key: spread([r[key] for r in c.results]),
                       "peak_rss_mib": spread([r["peak_rss_mib"] for r in c.results]),
                       "env": c.results[0].get("env", {}),
                       "env_set_by_libraries": c.results[0].get("env_set_by_libraries", {})}
    if len(contenders) >= 2:
        a, b = contenders[0].name, contenders[1].name
        out["ratio"] = out[a][key]["median"] / out[b][key]["median"]
        out["ratio_of"] = f"{a} / {b}"
        out["ratio_per_round"] = [ra[key] / rb[key] for ra, rb in zip(contenders[0].results, contenders[1].results)]
        if out[a]["env"] != out[b]["env"]:
            out["env_differs"] = True
        for c in contenders[2:]:   # a further contender, against each of the first two in the same rounds
            out[c.name]["ratios"] = {o.name: {"of_medians": out[c.name][key]["median"] / out[o.name][key]["median"],
                                              "per_round": [rc[key] / ro[key] for rc, ro in zip(c.results, o.results)]}
                                     for o in contenders[:2]}
    loads = [r["load_1min"] for c in contenders for r in c.results if "load_1min" in r]
    if loads:
        out["load_1min"] = [min(loads), max(loads)]
    return out


def print_summary(title: str, summary: dict[str, Any], unit: str, key: str = "per_s") -> None:
    """One line per contender: median [min-max] (IQR) and peak memory; then the ratio."""
    print(f"{title}")
    for name, s in summary.items():
        if not isinstance(s, dict) or key not in s:
            continue
        v, m = s[key], s["peak_rss_mib"]
        print(f"  {name:8} {v['median']:10.1f} {unit}  [min {v['min']:.1f}, max {v['max']:.1f}; "
              f"IQR {v['q1']:.1f}-{v['q3']:.1f}; n={v['n']}]   peak RSS {m['median']:.0f} MiB "
              f"[{m['min']:.0f}-{m['max']:.0f}]")
        if s.get("env_set_by_libraries"):
            print(f"           set by the libraries at import: {s['env_set_by_libraries']}")
    if "ratio" in summary:
        per_round = summary["ratio_per_round"]
        print(f"  ratio of medians ({summary['ratio_of']}): {summary['ratio']:.3f}   "
              f"(round by round {min(per_round):.3f}-{max(per_round):.3f})")
    for name, s in summary.items():
        for other, r in (s.get("ratios", {}) if isinstance(s, dict) else {}).items():
            print(f"  ratio of medians ({name} / {other}): {r['of_medians']:.3f}   "
                  f"(round by round {min(r['per_round']):.3f}-{max(r['per_round']):.3f})")
    if "load_1min" in summary:
        lo, hi = summary["load_1min"]
        busy = "  (a busy machine: these ratios are not to be quoted)" if hi > 0.5 * (os.cpu_count() or 1) else ""
        print(f"  1-minute load average as the processes ended: {lo:.2f}-{hi:.2f} on {os.cpu_count()} CPUs{busy}")
    if summary.get("env_differs"):
        print("  WARNING: the contenders saw different tuning variables: "
              + "; ".join(f"{n}: {s['env']}" for n, s in summary.items() if isinstance(s, dict) and "env" in s))


def setup_weights(script: str, argv: Sequence[str], directory: str) -> str:
    """Have a ``setup`` child write the shared weights; return the path of the ``.npz`` file."""
    path = os.path.join(directory, "weights.npz")
    run_child([script, *argv, "--child", "setup", "--weights", path])
    return path


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=1)


def compare_processes(script: str, argv: Sequence[str], args: argparse.Namespace, unit: str,
                      title: str, shared_weights: bool = True,
                      log: Callable[[str], None] = print) -> tuple[dict[str, Any], list[Contender]]:
    """The whole parent side for one workload: shared weights, alternated rounds, the summary.

    ``argv`` are the workload's own options (config, batch, ...), passed to every child.
    """
    with tempfile.TemporaryDirectory(prefix="tinyllm-bench-") as tmp:
        extra = ["--weights", setup_weights(script, argv, tmp)] if shared_weights else []
        common = [*argv, "--warmup", str(args.warmup), "--steps", str(args.steps), *extra]
        contenders = []
        for name in args.contenders:
            child, flags = CHILD_OF[name]
            if name == "tinyllm" and args.import_numpy_first:
                flags = ["--import-numpy-first"]
            contenders.append(Contender(name, [script, *common, *flags, "--child", child]))
        alternate(contenders, args.rounds, log=log)
    summary = summarize(contenders)
    print_summary(title, summary, unit)
    return summary, contenders


# ----------------------------------------------------------------------------- matmul peak

PEAK_LIBS = ("numpy", "torch", "cupy", "torch-cuda")


def matmul_peak_child(lib: str, n: int = 0, reps: int = 5) -> None:
    """Child: the best FLOP/s of ``reps`` float32 n x n x n products, with the library's defaults
    (n = 2048 on the CPU, 8192 on a GPU)."""
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if lib in ("numpy", "cupy"):
        import numpy as np  # noqa: PLC0415
        xp = np
        if lib == "cupy":
            import cupy as xp  # noqa: PLC0415
            sync = xp.cuda.get_current_stream().synchronize
        n = n or (8192 if lib == "cupy" else 2048)
        a = xp.asarray(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    else:
        import torch  # noqa: PLC0415
        device = "cuda" if lib == "torch-cuda" else "cpu"
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False   # float32 as the benchmarks run it
            sync = torch.cuda.synchronize
        n = n or (8192 if device == "cuda" else 2048)
        a = torch.randn(n, n, dtype=torch.float32, device=device)
    best = min(time_steps(lambda i: a @ a, 1, reps, sync))
    report({"lib": lib, "n": n, "flops_per_s": 2 * n ** 3 / best})


def matmul_peak(libs: Sequence[str] = ("numpy", "torch")) -> dict[str, float]:
    """Float32 matmul FLOP/s of each library, each in a fresh process (a library that is missing is left out)."""
    out = {}
    for lib in libs:
        try:
            out[lib] = run_child([os.path.abspath(__file__), "--matmul-peak", lib])["flops_per_s"]
        except RuntimeError as e:
            print(f"  (no matmul peak from {lib}: {str(e).splitlines()[-1]})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matmul-peak", choices=PEAK_LIBS, required=True)
    ap.add_argument("--n", type=int, default=0, help="matrix size (default 2048 on the CPU, 8192 on a GPU)")
    args = ap.parse_args()
    matmul_peak_child(args.matmul_peak, args.n)


if __name__ == "__main__":
    main()
