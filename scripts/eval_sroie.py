#!/usr/bin/env python3
"""Accuracy and speed of OCR + extraction on a SROIE-style receipt set.

Runs the same document reader as ``claims-ocr extract`` (engine from the settings, one
file per call so each page is timed on its own), writes the JSON lines that
``../shared/tools/sroie_score.py`` reads, scores them and prints the per-page OCR time
(median after warm-up). Tune on the dev set only.

    python scripts/eval_sroie.py                                  # sroie-dev
    python scripts/eval_sroie.py --dataset ../shared/datasets/sroie-train
    python scripts/eval_sroie.py --dataset DIR --ocr-cache data/eval/ocr-train

``--ocr-cache`` keeps each receipt's engine output (one JSON per receipt) and reuses it on
the next run, so a change to extraction alone is re-measured in seconds; cached receipts
are not timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


class _Recording:
    """Wraps an OCR engine and keeps the pages it read, so they can be cached."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name: str = engine.name
        self.read_pages: list[Any] = []

    def read(self, pages: Sequence[Any]) -> list[Any]:
        out = list(self.engine.read(pages))
        self.read_pages.extend(out)
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        type=Path,
        default=SHARED / "datasets/sroie-dev",
        help="SROIE-style folder with img/ and key/ (default: sroie-dev)",
    )
    parser.add_argument("--images", type=Path, default=None, help="default: DATASET/img")
    parser.add_argument("--keys", type=Path, default=None, help="default: DATASET/key")
    parser.add_argument("--scorer", type=Path, default=SHARED / "tools/sroie_score.py")
    parser.add_argument("--out", type=Path, default=None, help="default: data/eval/NAME.jsonl")
    parser.add_argument("--ocr-cache", type=Path, default=None, help="reuse engine output here")
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    parser.add_argument("--limit", type=int, default=None, help="only the first N receipts")
    parser.add_argument("--warmup", type=int, default=3, help="pages left out of the timing")
    args = parser.parse_args()
    images_dir = args.images or args.dataset / "img"
    keys_dir = args.keys or args.dataset / "key"
    out_path = args.out or ROOT / f"data/eval/{args.dataset.resolve().name}.jsonl"

    from services.claim_reader import DocumentResult, read_documents, result_record
    from services.config import get_settings
    from services.extraction import extract_claim
    from services.ocr.pages import PageLimits
    from services.ocr.result import page_from_json, page_to_json

    settings = get_settings()
    threshold = settings.ocr_high_confidence_threshold
    today = args.today or date.today()
    images = sorted(images_dir.glob("*.jpg"))[: args.limit]
    engine: _Recording | None = None
    if args.ocr_cache is not None:
        args.ocr_cache.mkdir(parents=True, exist_ok=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    times: list[float] = []
    with out_path.open("w", encoding="utf-8") as out:
        for index, path in enumerate(images):
            cached = args.ocr_cache / f"{path.stem}.json" if args.ocr_cache else None
            if cached is not None and cached.exists():
                pages = [page_from_json(p) for p in json.loads(cached.read_text("utf-8"))]
                extraction = extract_claim(pages, today=today, threshold=threshold)
                result = DocumentResult(str(path), extraction, len(pages), 0.0)
            else:
                if engine is None:
                    from workers.wiring import build_ocr_engine

                    engine = _Recording(build_ocr_engine(settings))
                engine.read_pages.clear()
                started = time.perf_counter()
                (result,) = read_documents(
                    engine,
                    [(str(path), path.read_bytes())],
                    limits=PageLimits(pdf_dpi=settings.pdf_dpi),
                    threshold=threshold,
                    today=today,
                )
                if index >= args.warmup:
                    times.append(time.perf_counter() - started)
                if cached is not None and result.error_code is None:
                    pages_json = [page_to_json(p) for p in engine.read_pages]
                    cached.write_text(json.dumps(pages_json), encoding="utf-8")
            out.write(json.dumps(result_record(result), ensure_ascii=False) + "\n")
            print(f"\r{index + 1}/{len(images)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    subprocess.run([sys.executable, str(args.scorer), str(out_path), str(keys_dir)], check=True)
    if times and engine is not None:
        print(
            f"engine {engine.name} on {settings.ocr_device}: {len(times)} pages timed, "
            f"median {statistics.median(times):.2f} s/page, "
            f"p90 {sorted(times)[int(0.9 * len(times))]:.2f} s/page"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
