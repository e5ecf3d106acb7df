"""The Dask baseline of P3: the same word count as a Dask bag on a local cluster of 2 worker
processes of 1 thread each.

Dask is no dependency of mr: it lives in a venv of its own (VENV, made here when missing), where
this file runs as a script (not as part of the benchmarks package, which needs mr's venv); only
:func:`dask_word_count` runs in the benchmark's process. Hence the standard library only at the
top.

Usage (in that venv): ``python benchmarks/dask_word_count.py COUNTS_JSON FILE ...``: prints
``{"seconds": ...}`` (from building the bag to the counts in the client, the cluster already
up) and writes the counts to COUNTS_JSON.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mr" / "bench" / "venv"
REQUIREMENT = "dask[distributed]==2026.8.0"
WORKERS = 2


def dask_word_count(paths: list[Path]) -> tuple[float, dict[str, int], str]:
    """Seconds, counts and Dask's version, from a run in the Dask venv."""
    python = _venv_python()
    with tempfile.TemporaryDirectory(prefix="mr-benchmark-dask-") as directory:
        counts_path = Path(directory) / "counts.json"
        finished = subprocess.run(
            [str(python), str(Path(__file__).resolve()), str(counts_path), *map(str, paths)],
            capture_output=True, text=True, check=False)
        if finished.returncode != 0:
            raise RuntimeError(f"the Dask word count failed:\n{finished.stderr[-3000:]}")
        report = json.loads(finished.stdout.splitlines()[-1])
        counts = json.loads(counts_path.read_text())
    return report["seconds"], counts, report["version"]


def _venv_python() -> Path:
    """The venv's Python, once REQUIREMENT is installed there (a stamp file says so)."""
    python, stamp = VENV / "bin" / "python", VENV / f"installed {REQUIREMENT}"
    if not stamp.exists():
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", REQUIREMENT],
                       check=True)
        stamp.touch()
    return python


def main(argv: list[str]) -> int:
    import dask
    import dask.bag
    from dask.distributed import Client, LocalCluster

    counts_path, files = argv[1], argv[2:]
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster):
        started = time.perf_counter()
        counts = dict(dask.bag.read_text(files)
                      .map(lambda line: re.findall(r"\w+", line.lower()))
                      .flatten().frequencies().compute())
        seconds = time.perf_counter() - started
    Path(counts_path).write_text(json.dumps(counts))
    print(json.dumps({"seconds": seconds, "version": dask.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
