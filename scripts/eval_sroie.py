#!/usr/bin/env python3
"""Accuracy and speed of OCR + extraction on the SROIE dev receipts.

Runs the same document reader as ``claims-ocr extract`` (engine from the settings, one
file per call so each page is timed on its own), writes the JSON lines that
``../shared/tools/sroie_score.py`` reads, scores them and prints the per-page OCR time
(median after warm-up). Tune on the dev set only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=SHARED / "datasets/sroie-dev/img")
    parser.add_argument("--keys", type=Path, default=SHARED / "datasets/sroie-dev/key")
    parser.add_argument("--scorer", type=Path, default=SHARED / "tools/sroie_score.py")
    parser.add_argument("--out", type=Path, default=ROOT / "data/eval/sroie-dev.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="only the first N receipts")
    parser.add_argument("--warmup", type=int, default=3, help="pages left out of the timing")
    args = parser.parse_args()

    from services.claim_reader import read_documents, result_record
    from services.config import get_settings
    from services.ocr.pages import PageLimits
    from workers.wiring import build_ocr_engine

    settings = get_settings()
    engine = build_ocr_engine(settings)
    images = sorted(args.images.glob("*.jpg"))[: args.limit]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    times: list[float] = []
    with args.out.open("w", encoding="utf-8") as out:
        for index, path in enumerate(images):
            started = time.perf_counter()
            (result,) = read_documents(
                engine,
                [(str(path), path.read_bytes())],
                limits=PageLimits(pdf_dpi=settings.pdf_dpi),
                threshold=settings.ocr_high_confidence_threshold,
            )
            if index >= args.warmup:
                times.append(time.perf_counter() - started)
            out.write(json.dumps(result_record(result), ensure_ascii=False) + "\n")
            print(f"\r{index + 1}/{len(images)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    subprocess.run([sys.executable, str(args.scorer), str(args.out), str(args.keys)], check=True)
    if times:
        print(
            f"engine {engine.name} on {settings.ocr_device}: {len(times)} pages timed, "
            f"median {statistics.median(times):.2f} s/page, "
            f"p90 {sorted(times)[int(0.9 * len(times))]:.2f} s/page"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
