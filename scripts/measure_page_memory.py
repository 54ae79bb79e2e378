#!/usr/bin/env python3
"""Peak memory of reading hostile PDFs, and seconds per receipt, each in a fresh process.

Why a fresh process: ``ru_maxrss`` is a high-water mark, so only a process that has done
nothing else measures one case. Each child loads the engine from the settings (as the
OCR worker does), warms it on one generated receipt, notes its peak RSS (the baseline),
runs ``read_documents`` once and reports the new peak. ``--code-root`` measures another
checkout (e.g. ``git archive HEAD`` unpacked in /tmp) with the same script and PDF.

    .venv/bin/python scripts/measure_page_memory.py --documents 1 8
    .venv/bin/python scripts/measure_page_memory.py --receipts ../shared/datasets/sroie-dev/img
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _watchdog(limit_mb: float) -> None:
    """Stop the child before it can take the machine down (the unbounded 'before' code)."""

    def watch() -> None:
        while True:
            rss = _rss_mb()
            if rss > limit_mb:
                print(json.dumps({"aborted_at_mb": round(rss)}), flush=True)
                os._exit(3)
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()


def _child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(args.code_root))
    import random

    import numpy as np

    from services.claim_reader import read_documents
    from services.config import Settings
    from services.demo.receipts import random_spec, render_receipt
    from workers.wiring import build_ocr_engine, page_limits

    settings = Settings()
    engine = build_ocr_engine(settings)
    limits = page_limits(settings)
    warm = np.asarray(render_receipt(random_spec(random.Random(1)), seed=1).convert("RGB"))
    engine.read([warm])
    baseline = _peak_mb()
    _watchdog(args.abort_mb)
    if args.receipts:
        times = []
        for path in sorted(Path(args.receipts).glob("*.jpg"))[: args.count]:
            documents = [(path.name, path.read_bytes())]
            started = time.perf_counter()
            read_documents(engine, documents, limits=limits, threshold=0.9)
            times.append(time.perf_counter() - started)
        print(json.dumps({"median_s": statistics.median(times), "times": times}))
        return
    pdf = Path(args.pdf).read_bytes()
    documents = [(f"doc{i}", pdf) for i in range(args.documents[0])]
    started = time.perf_counter()
    results = read_documents(engine, documents, limits=limits, threshold=0.9)
    record = {
        "documents": len(documents),
        "baseline_mb": round(baseline),
        "peak_mb": round(_peak_mb()),
        "growth_mb": round(_peak_mb() - baseline),
        "seconds": round(time.perf_counter() - started, 1),
        "results": sorted({f"{r.error_code or 'read'}:{r.page_count}p" for r in results}),
    }
    print(json.dumps(record))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--side-pt", type=int, default=14_400)
    parser.add_argument("--receipts", type=Path, help="time reading these images instead")
    parser.add_argument("--count", type=int, default=8, help="receipts to time")
    parser.add_argument("--code-root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--abort-mb", type=float, default=12_000, help="stop a child past this")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pdf", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.support.bad_files import huge_page_pdf

    common = ["--code-root", str(args.code_root.resolve()), "--abort-mb", str(args.abort_mb)]
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "huge.pdf"
        pdf.write_bytes(huge_page_pdf(args.pages, args.side_pt))
        runs = (
            [["--receipts", str(args.receipts.resolve()), "--count", str(args.count)]]
            if args.receipts
            else [["--pdf", str(pdf), "--documents", str(n)] for n in args.documents]
        )
        for run in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--child", *common, *run],
                capture_output=True,
                text=True,
                cwd=args.code_root,
            )
            lines = out.stdout.strip().splitlines()
            print(lines[-1] if lines else out.stderr.strip()[-2000:], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
