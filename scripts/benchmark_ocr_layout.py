#!/usr/bin/env python3
"""OCR process layout on a CPU: one process with every core's threads vs one process a core.

The same pages are read both ways, in alternating rounds (so a noisy machine hits both
alike): one engine process with ``--threads`` runtime threads reads them all, then
``--processes`` engine processes with one thread each read a share each, all at once.
Prints pages/s of each layout, their ratio, and the peak RSS of every process (several
processes hold one model copy each). Default pages: the shared receipts, large scans
included, spread evenly (``benchmark_ocr.pick_images``). What it measures is what
``OCR_PROCESSES`` / ``OCR_THREADS`` choose for ``claims-ocr run``.

    python scripts/benchmark_ocr_layout.py                 # 20 pages, 2 rounds, 2 vs 2x1
    python scripts/benchmark_ocr_layout.py --pages 40 --rounds 3 --json /tmp/layout.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark_ocr import DEFAULT_IMAGES, pick_images  # noqa: E402


def _read(
    paths: Sequence[Path], threads: int, ready: Any, go: Event, results: Any, warm: Path
) -> None:
    """One engine process: load, warm up on one page, wait for the start, read, report."""
    import cv2

    from services.ocr.onnx_engine import OnnxOcrEngine

    engine = OnnxOcrEngine(threads=threads)
    engine.read([cv2.imread(str(warm))])
    ready.put(os.getpid())
    go.wait()
    started = time.perf_counter()
    for path in paths:
        engine.read([cv2.imread(str(path))])  # decoding is part of a page's cost
    elapsed = time.perf_counter() - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put((elapsed, rss_mib))


def run_layout(paths: Sequence[Path], processes: int, threads: int) -> dict[str, Any]:
    """Read ``paths`` with ``processes`` engine processes of ``threads`` threads each."""
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [list(paths[i::processes]) for i in range(processes)]
    procs = [
        ctx.Process(target=_read, args=(share, threads, ready, go, results, paths[0]))
        for share in shares
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=600)
    started = time.perf_counter()
    go.set()
    reports = [results.get(timeout=3600) for _ in procs]
    wall = time.perf_counter() - started
    for proc in procs:
        proc.join()
    return {
        "layout": f"{processes} x {threads} thread{'s' if threads > 1 else ''}",
        "pages_per_s": len(paths) / wall,
        "peak_rss_mib": [round(rss) for _, rss in reports],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path, help="folders of images")
    parser.add_argument("--pages", type=int, default=20, help="pages, spread over the folders")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="one process")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    paths = pick_images(args.images or DEFAULT_IMAGES, args.pages)
    rows: list[dict[str, Any]] = []
    for n in range(args.rounds):
        one = run_layout(paths, 1, args.threads)
        many = run_layout(paths, args.processes, 1)
        ratio = many["pages_per_s"] / one["pages_per_s"]
        rows += [{**one, "round": n}, {**many, "round": n, "ratio": ratio}]
        print(
            f"round {n}: {one['layout']} {one['pages_per_s']:.3f} pages/s "
            f"(RSS {one['peak_rss_mib']} MiB), {many['layout']} {many['pages_per_s']:.3f} "
            f"pages/s (RSS {many['peak_rss_mib']} MiB): {ratio:.2f}x",
            flush=True,
        )
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    print(
        f"{len(paths)} pages, {args.rounds} rounds: {args.processes} x 1 thread reads "
        f"{statistics.median(ratios):.2f}x the pages/s of 1 x {args.threads} threads (median)"
    )
    if args.json:
        args.json.write_text(json.dumps({"pages": len(paths), "rounds": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
