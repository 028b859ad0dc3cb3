"""``tinyllm train --nproc N``: start ``mpiexec -n N`` on this very command, without ``--nproc``.

What it runs is what a user would type::

    OMP_NUM_THREADS=k OPENBLAS_NUM_THREADS=k mpiexec -n N python -c "from tinyllm.cli import main; main()" train ...

with ``k = max(1, cores // N)`` BLAS threads per rank (unless the environment
sets them), so N ranks share the machine's cores instead of each starting
one thread per core. ``mpiexec`` is the one installed beside this Python (the
``mpich`` wheel of the ``[mpi]`` extra puts it in the virtualenv's ``bin``),
else the first on ``PATH``. The launcher waits for it and returns its exit
status; Ctrl-C goes to ``mpiexec``, which passes it on to every rank (a
second Ctrl-C makes it abort them).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .comm import launched_by_mpi

ENTRY = "from tinyllm.cli import main; main()"


def find_mpiexec() -> str:
    """The ``mpiexec`` beside this interpreter, else on PATH; a ValueError naming the extra if none."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise ValueError('--nproc needs mpiexec and mpi4py: pip install "tinyllm[mpi]"')
    return found


def _is_open_mpi(mpiexec: str) -> bool:
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "open mpi" in (out.stdout + out.stderr).lower()


def strip_nproc(argv: list[str]) -> tuple[int, list[str]]:
    """``(N, argv without --nproc N)`` from a command line (``--nproc N`` or ``--nproc=N``)."""
    rest, nproc = [], None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--nproc" and i + 1 < len(argv):
            nproc, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--nproc="):
            nproc = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    if nproc is None or not str(nproc).isdigit():
        raise ValueError("--nproc N works from the command line: tinyllm train --nproc 2 ...")
    return int(nproc), rest


def mpiexec_command(nproc: int, args: list[str], mpiexec: str | None = None) -> list[str]:
    """The ``mpiexec`` command line that runs ``tinyllm ARGS`` on ``nproc`` ranks."""
    mpiexec = mpiexec or find_mpiexec()
    extra = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 and _is_open_mpi(mpiexec) \
        else []
    return [mpiexec, "-n", str(nproc), *extra, sys.executable, "-c", ENTRY, *args]


def launch(nproc: int, argv: list[str] | None = None) -> int:
    """Run this command (``sys.argv`` by default) on ``nproc`` MPI ranks; return mpiexec's exit status.

    Raises:
        ValueError: ``nproc < 1``, already under mpiexec, or no MPI installed.
    """
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    if launched_by_mpi():
        raise ValueError("--nproc starts mpiexec itself: run `tinyllm train --nproc N ...` or "
                         "`mpiexec -n N tinyllm train ...`, not both")
    try:
        import mpi4py  # noqa: F401, PLC0415
    except ImportError:
        raise ValueError('--nproc needs mpi4py and an MPI: pip install "tinyllm[mpi]"') from None
    given, args = strip_nproc(list(sys.argv[1:] if argv is None else argv))
    if given != nproc:
        raise ValueError(f"--nproc {nproc} is not the command line's --nproc {given}")
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, threads)
    proc = subprocess.Popen(mpiexec_command(nproc, args), env=env)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)   # mpiexec gets Ctrl-C and passes it on
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
