"""Where a training step's time goes, for one of bench/train.py's configs.

    python bench/profile_step.py --config nano                      # every section
    python bench/profile_step.py --config large --steps 5 --sections timers perf
    python bench/profile_step.py --config nano --sections torch perf-torch

A profiling aid: each section measures one engine at a time, and the
comparison itself is ``bench/train.py``'s. Sections (``--sections``):

- ``timers``: wall ms per step in each ``Function``'s forward and backward
  (every one wrapped with a timer, a few microseconds each, so the totals run
  a little over the real step), and in forward / backward / clip + AdamW.
- ``counts``: per step, the ``Function.apply`` calls of each op class and how
  many of them recorded an autograd node (the engine creates a NumPy array
  per op output, so these bound the allocations from above, not counting
  temporaries inside an op); with ``tracemalloc``, the NumPy
  arrays (data blocks) and bytes the graph holds at the end of the forward,
  and the peak of traced memory during the step.
- ``cprofile``: Python time per op class (cumulative seconds in each class's
  forward and backward under cProfile, with cProfile's own overhead), and the
  functions with the most self time. An ``a @ b`` inside a function is not a
  call cProfile sees, so a matmul's time is the self time of the function
  that wrote it (``LinearFunction.forward``): matmul-bound functions show up
  with large self times.
- ``perf`` / ``perf-torch``: ``perf record`` (user-space CPU clock, every
  thread) over the timed steps of a fresh tinyllm / torch process, samples
  by shared object and symbol: BLAS compute (the ``sgemm`` kernels and their
  packing), threads waiting or handing work over (OpenBLAS's
  ``inner_thread`` / ``exec_blas``, OpenMP's runtime), the Python
  interpreter, NumPy, compiled kernels, the allocator. Shares are of CPU
  time summed over threads; "outside BLAS" is everything but BLAS compute.
  On a loaded machine the waiting grows on both sides: read it on a quiet one.
- ``torch``: ``torch.profiler`` over PyTorch's step: aten ops per step, self
  CPU time by op, the matmul ops' share.
- ``floor``: the step's matrix products alone (recorded from one real step,
  replayed with the same layouts and threads, ``bench/floor.py``): ms/step,
  the tokens/s and MFU they would give, and the largest ratio to PyTorch's
  tokens/s (``--torch-tok-s``, else measured in a quick fresh process on as
  many threads as the floor's BLAS) reachable with zero overhead outside
  the products.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
import floor_run  # noqa: E402
import harness  # noqa: E402
from train import CONFIGS, batches, build_tinyllm, build_torch  # noqa: E402

SECTIONS = ["timers", "counts", "cprofile", "perf", "torch", "perf-torch", "floor"]
# perf symbol -> category; the first pattern that matches wins (checked against "dso symbol").
CATEGORIES = [
    # OpenBLAS's inner_thread / exec_blas / thread server are its workers handing work over and
    # waiting for each other (the products themselves are the sgemm_* symbols); libgomp is
    # OpenMP's runtime (torch's threads spinning or at a barrier; the work is in libtorch).
    ("threads waiting / syncing (BLAS, OpenMP)",
     r"openblas\S*\s.*(inner_thread|exec_blas|blas_thread_server|sched_yield)|libgomp|libiomp|libomp"),
    ("BLAS compute", r"openblas|libmkl|gemm|dnnl|brgemm|mkldnn|blas"),
    ("Python interpreter", r"libpython|python3"),
    ("NumPy", r"_multiarray_umath|numpy|_umath"),
    ("compiled kernels (Numba / JIT)", r"\[unknown\]|\[JIT\]|perf-\d+\.map|numba|llvmlite"),
    ("allocator, memcpy (libc)", r"libc\.so|libc-|ld-linux"),
    ("torch (other)", r"libtorch|libc10"),
]


def tinyllm_setup(config: str):
    import tinyllm  # noqa: F401  (before NumPy loads)
    cfg = CONFIGS[config]
    model, step, opt = build_tinyllm(cfg)
    return cfg, model, step, opt


# ----------------------------------------------------------------------------- timers

def instrument(classes: list[type], totals: dict) -> None:
    """Wrap forward and backward of every op class with a timer."""
    def wrap(cls: type, name: str) -> None:
        fn = getattr(cls, name)

        def timed(self, *a, **k):
            t = time.perf_counter()
            out = fn(self, *a, **k)
            totals[f"{cls.__name__}.{name}"] += time.perf_counter() - t
            return out
        setattr(cls, name, timed)
    for cls in classes:
        for name in ("forward", "backward"):
            if name in cls.__dict__:
                wrap(cls, name)


def section_timers(config: str, steps: int) -> None:
    cfg, model, _, opt = tinyllm_setup(config)
    totals: dict = collections.defaultdict(float)
    instrument(common.tinyllm_op_classes(), totals)
    phases: dict = collections.defaultdict(float)
    for i, (x, y) in enumerate(batches(cfg, steps + 2)):
        if i == 2:
            totals.clear()
            phases.clear()
        t0 = time.perf_counter()
        _, loss = model(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        common.tinyllm_clip(opt, model, 1.0)
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        phases["forward"] += t1 - t0
        phases["backward"] += t2 - t1
        phases["clip + AdamW"] += t3 - t2
    step = sum(phases.values()) / steps
    print(f"== timers: {config}, {step * 1e3:.1f} ms/step "
          f"({cfg['batch_size'] * cfg['block_size'] / step:.0f} tokens/s, timers included)")
    for k, v in phases.items():
        print(f"  {k:32} {v / steps * 1e3:8.2f} ms")
    print(f"  {'Function':32} {'ms/step':>8} {'share':>6}")
    for k, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        if v / steps >= 5e-5:
            print(f"  {k:32} {v / steps * 1e3:8.2f} {v / steps / step:6.1%}")


# ----------------------------------------------------------------------------- counts

def section_counts(config: str, steps: int) -> None:
    import tracemalloc

    import numpy as np
    cfg, model, _, opt = tinyllm_setup(config)
    function = common.tinyllm_function_base()
    calls: collections.Counter = collections.Counter()
    nodes: collections.Counter = collections.Counter()
    original = function.__dict__["apply"]

    def counting_apply(cls, *inputs, **params):
        out = original.__func__(cls, *inputs, **params)
        calls[cls.__name__] += 1
        nodes[cls.__name__] += out._ctx is not None
        return out
    function.apply = classmethod(counting_apply)
    domain = np.lib.tracemalloc_domain
    data = batches(cfg, steps + 1)
    try:
        model(*data[0])[1].backward()           # a first step outside the counts (lazy set-ups)
        opt.zero_grad()
        calls.clear()
        nodes.clear()
        held_blocks = held_bytes = peak = 0
        tracemalloc.start()
        for x, y in data[1:]:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            before = _numpy_blocks(tracemalloc.take_snapshot(), domain)
            _, loss = model(x, y)
            after = _numpy_blocks(tracemalloc.take_snapshot(), domain)
            held_blocks += after[0] - before[0]
            held_bytes += after[1] - before[1]
            loss.backward()
            common.tinyllm_clip(opt, model, 1.0)
            opt.step()
            opt.zero_grad()
            peak += tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    finally:
        function.apply = original
    n = len(data) - 1
    print(f"== counts: {config}, per step (mean of {n})")
    print(f"  Function.apply calls {sum(calls.values()) / n:.0f}, autograd nodes recorded {sum(nodes.values()) / n:.0f}")
    for name, c in calls.most_common():
        print(f"    {name:28} {c / n:7.1f} calls  {nodes[name] / n:7.1f} nodes")
    print(f"  NumPy arrays held by the graph after the forward: {held_blocks / n:.0f} blocks, "
          f"{held_bytes / n / 2**20:.1f} MiB; peak traced memory during a step {peak / n / 2**20:.1f} MiB above its start")


def _numpy_blocks(snapshot, domain: int) -> tuple[int, int]:
    """(blocks, bytes) of NumPy data buffers alive in a tracemalloc snapshot."""
    stats = snapshot.filter_traces([__import__("tracemalloc").DomainFilter(True, domain)]).statistics("filename")
    return sum(s.count for s in stats), sum(s.size for s in stats)


# ----------------------------------------------------------------------------- cProfile

def section_cprofile(config: str, steps: int, rows: int = 15) -> None:
    cfg, _, step, _ = tinyllm_setup(config)
    data = batches(cfg, steps + 2)
    for x, y in data[:2]:
        step(x, y)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for x, y in data[2:]:
        step(x, y)
    prof.disable()
    wall = (time.perf_counter() - t) / steps
    st = pstats.Stats(prof).stats        # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    owner = {}
    for cls in common.tinyllm_op_classes():
        for name in ("forward", "backward"):
            fn = cls.__dict__.get(name)
            if fn is not None and hasattr(fn, "__code__"):
                code = fn.__code__
                owner[(code.co_filename, code.co_firstlineno, code.co_name)] = (cls.__name__, name)
    per_op: dict = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for key, (_, nc, _, cum, _) in st.items():
        if key in owner:
            cls, name = owner[key]
            per_op[cls][0] += nc if name == "forward" else 0
            per_op[cls][1 if name == "forward" else 2] += cum
    print(f"== cprofile: {config}, {wall * 1e3:.1f} ms/step under cProfile")
    print(f"  {'op class':28} {'calls/step':>10} {'fwd ms':>8} {'bwd ms':>8} {'share':>6}")
    for cls, (nc, fwd, bwd) in sorted(per_op.items(), key=lambda kv: -(kv[1][1] + kv[1][2])):
        print(f"  {cls:28} {nc / steps:10.1f} {fwd / steps * 1e3:8.2f} {bwd / steps * 1e3:8.2f} "
              f"{(fwd + bwd) / steps / wall:6.1%}")
    by_file: dict = collections.defaultdict(float)
    for (file, _, _), (_, _, tot, _, _) in st.items():
        by_file[_short(file)] += tot
    print("  self time by file (C functions under '~'):")
    for f, tot in sorted(by_file.items(), key=lambda kv: -kv[1])[:rows]:
        print(f"    {f:48} {tot / steps * 1e3:8.2f} ms  {tot / steps / wall:6.1%}")
    print("  functions with the most self time:")
    for (file, line, name), (_, nc, tot, _, _) in sorted(st.items(), key=lambda kv: -kv[1][2])[:rows]:
        print(f"    {_short(file)}:{line}({name})"[:70].ljust(72) + f"{nc / steps:8.1f}x {tot / steps * 1e3:8.2f} ms")


def _short(file: str) -> str:
    i = file.find("tinyllm/")
    return file[i:] if i >= 0 else os.path.basename(file)


# ----------------------------------------------------------------------------- perf

def perf_child(engine: str, config: str, steps: int, out: str) -> None:
    """Child: warm up, then ``perf record`` this very process over ``steps`` timed steps."""
    cfg = CONFIGS[config]
    if engine == "tinyllm":
        harness.import_tinyllm(False)
        _, step, _ = build_tinyllm(cfg)
        data = [tuple(common.tinyllm_asarray(a) for a in b) for b in batches(cfg, steps + 3)]
    else:
        import torch
        _, step, _ = build_torch(cfg, None)
        data = [tuple(torch.from_numpy(a) for a in b) for b in batches(cfg, steps + 3)]
    for b in data[:3]:
        step(*b).item()
    rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock:u", "-F", "2000", "-p", str(os.getpid()),
                            "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)                                   # perf attaches to every thread
    t = time.perf_counter()
    for b in data[3:]:
        step(*b).item()
    wall = time.perf_counter() - t
    rec.send_signal(signal.SIGINT)
    rec.wait(timeout=60)
    harness.report({"engine": engine, "wall_s": wall, "steps": steps})


def section_perf(engine: str, config: str, steps: int, rows: int = 12) -> None:
    if shutil.which("perf") is None:
        print("== perf: perf is not installed; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "perf.data")
        res = harness.run_child([__file__, "--perf-child", engine, "--config", config, "--steps", str(steps),
                                 "--perf-out", out])
        rep = subprocess.run(["perf", "report", "-i", out, "--stdio", "--sort", "dso,sym", "-q"], check=False,
                             capture_output=True, text=True)
    lines = [ln for ln in rep.stdout.splitlines() if re.match(r"\s*[\d.]+%", ln)]
    if not lines:
        print(f"== perf ({engine}): no samples ({rep.stderr.strip()[:200]})")
        return
    cats: dict = collections.defaultdict(float)
    for ln in lines:
        pct, rest = ln.strip().split("%", 1)
        cats[next((c for c, pat in CATEGORIES if re.search(pat, rest, re.IGNORECASE)), "other")] += float(pct)
    wall = res["wall_s"] / steps
    print(f"== perf ({engine}): {config}, {wall * 1e3:.1f} ms/step wall; CPU-time shares over all threads")
    for c, pct in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"  {c:34} {pct:6.1f}%")
    print(f"  outside BLAS compute: {100 - cats.get('BLAS compute', 0.0):.1f}% of the CPU time")
    print("  top symbols:")
    for ln in lines[:rows]:
        print("   " + " ".join(ln.split())[:110])


# ----------------------------------------------------------------------------- torch.profiler

def section_torch(config: str, steps: int, rows: int = 15) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile
    cfg = CONFIGS[config]
    _, step, _ = build_torch(cfg, None)
    data = [tuple(torch.from_numpy(a) for a in b) for b in batches(cfg, steps + 2)]
    for b in data[:2]:
        step(*b).item()
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in data[2:]:
            step(*b).item()
    wall = (time.perf_counter() - t) / steps
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total_self = sum(e.self_cpu_time_total for e in events) or 1.0
    matmul = sum(e.self_cpu_time_total for e in events if re.search(r"mm|matmul|addmm|bmm|linear|dot", e.key))
    print(f"== torch.profiler: {config}, {wall * 1e3:.1f} ms/step under the profiler (torch threads "
          f"{torch.get_num_threads()})")
    print(f"  aten op calls per step {sum(e.count for e in events) / steps:.0f} (nested ones included)")
    print(f"  self CPU time in matmul ops {matmul / total_self:.1%} of the aten self time")
    print(f"  {'op':40} {'calls/step':>10} {'self ms/step':>12}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
        print(f"  {e.key:40} {e.count / steps:10.1f} {e.self_cpu_time_total / 1e3 / steps:12.2f}")


def blas_facts() -> str:
    """Which OpenBLAS kernels NumPy runs, on how many threads and CPUs (a fresh process: importing
    tinyllm first, as the benchmarks do). ``OPENBLAS_CORETYPE`` picks the kernels: on a CPU with
    full-width AVX-512 (AMD Zen 5) ``Haswell``'s AVX2 sgemm runs at about half of ``SkylakeX``'s."""
    code = ("import os, ctypes, tinyllm, numpy; from tinyllm import backend\n"
            "from tinyllm.kernels.cpu.platform import _loaded_openblas\n"
            "paths = _loaded_openblas(); lib = ctypes.CDLL(paths[0]) if paths else None\n"
            "name = next((getattr(lib, n) for n in ('scipy_openblas_get_corename64_', 'scipy_openblas_get_corename',\n"
            "             'openblas_get_corename64_', 'openblas_get_corename') if lib is not None and hasattr(lib, n)), None)\n"
            "if name is not None: name.restype = ctypes.c_char_p\n"
            "core = name().decode() if name is not None else '?'\n"
            "threads = backend._BLAS_THREADS[0]() if backend._BLAS_THREADS else '?'\n"
            "print(f'OpenBLAS core {core}, {threads} thread(s); CPUs this process may use: '\n"
            "      f'{len(os.sched_getaffinity(0))} of {os.cpu_count()}; OPENBLAS_CORETYPE='\n"
            "      f'{os.environ.get(\"OPENBLAS_CORETYPE\", \"(unset)\")}')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return res.stdout.strip() or f"(could not tell: {res.stderr.strip()[-200:]})"


SECTION_FUNCS = {"timers": section_timers, "counts": section_counts, "cprofile": section_cprofile,
                 "torch": section_torch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="nano")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    ap.add_argument("--torch-tok-s", type=float, help="floor: PyTorch's tokens/s to compare with "
                    "(default: measured in a quick fresh process, as many threads)")
    ap.add_argument("--here", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--perf-child", choices=["tinyllm", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--perf-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.perf_child:
        perf_child(args.perf_child, args.config, args.steps, args.perf_out)
        return
    if args.here:
        SECTION_FUNCS[args.sections[0]](args.config, args.steps)
        return
    has_torch = common.torch_available()
    print(f"== BLAS: {blas_facts()}")
    for s in args.sections:
        if s in ("torch", "perf-torch") and not has_torch:
            print(f"== {s}: torch is not installed; skipped")
        elif s == "floor":
            floor_run.section(args.config, args.steps, args.torch_tok_s)
        elif s in ("perf", "perf-torch"):
            section_perf("tinyllm" if s == "perf" else "torch", args.config, args.steps)
        else:   # each in a fresh process: no section sees another's patches, imports or threads
            subprocess.run([sys.executable, __file__, "--config", args.config, "--steps", str(args.steps),
                            "--sections", s, "--here"], check=False)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
