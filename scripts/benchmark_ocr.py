#!/usr/bin/env python3
"""OCR speed and accuracy of our ONNX engine against rapidocr's own pipeline, same run.

Both read the same SROIE receipts with the same PP-OCRv6 models on the same cores; each
output goes through our extraction and ``sroie_score.py``. Prints seconds per page
(median after warm-up) and the ratio to the baseline (rapidocr's default pipeline), plus
our engine reading all pages in one batched call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _rapidocr_pages(engine, page: np.ndarray):
    from services.ocr.result import PageText, TextLine, quad, reading_order

    out = engine(page)
    lines = []
    if out.boxes is None:
        return PageText(page.shape[1], page.shape[0], ())
    for box, text, score in zip(out.boxes, out.txts, out.scores, strict=True):
        lines.append(TextLine(text, quad(box), float(score), (float(score),) * len(text)))
    height, width = page.shape[:2]
    return PageText(width, height, reading_order(lines))


def _score(records: list[dict], keys: Path, scorer: Path) -> dict[str, float]:
    """Score against the keys of the receipts read (the scorer counts absent ones wrong)."""
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "keys"
        subset.mkdir()
        for record in records:
            name = Path(record["file"]).stem + ".json"
            shutil.copy2(keys / name, subset / name)
        predictions = Path(tmp) / "predictions.jsonl"
        predictions.write_text("".join(json.dumps(r) + "\n" for r in records))
        out = subprocess.run(
            [sys.executable, str(scorer), str(predictions), str(subset), "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return json.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=SHARED / "datasets/sroie-dev/img")
    parser.add_argument("--keys", type=Path, default=SHARED / "datasets/sroie-dev/key")
    parser.add_argument("--scorer", type=Path, default=SHARED / "tools/sroie_score.py")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    from rapidocr import RapidOCR

    from services.claim_reader import DocumentResult, result_record
    from services.extraction import extract_claim
    from services.ocr.onnx_engine import OnnxOcrEngine
    from services.ocr.pages import load_pages

    paths = sorted(args.images.glob("*.jpg"))[: args.limit]
    pages = [load_pages(p.read_bytes())[0] for p in paths]
    today = date.today()
    ours = OnnxOcrEngine()
    baseline = RapidOCR(params={"Global.log_level": "error"})
    readers = {
        "rapidocr default (baseline)": lambda page: _rapidocr_pages(baseline, page),
        "claims-ocr onnx engine": lambda page: ours.read([page])[0],
    }
    results: dict[str, tuple[float, dict]] = {}
    for name, read in readers.items():
        times, records = [], []
        for index, (path, page) in enumerate(zip(paths, pages, strict=True)):
            started = time.perf_counter()
            text = read(page)
            if index >= args.warmup:
                times.append(time.perf_counter() - started)
            extraction = extract_claim([text], today=today)
            records.append(result_record(DocumentResult(str(path), extraction, 1, 0.0)))
        results[name] = (statistics.median(times), _score(records, args.keys, args.scorer))

    started = time.perf_counter()
    ours.read(pages)
    batched = (time.perf_counter() - started) / len(pages)

    base_s = results["rapidocr default (baseline)"][0]
    print(f"{len(pages)} SROIE pages, median s/page after {args.warmup} warm-up pages")
    print(
        f"{'reader':30} {'s/page':>7} {'speed-up':>8}  total  date  company  address  "
        "submit  submit-precision"
    )
    for name, (seconds, s) in results.items():
        print(
            f"{name:30} {seconds:7.2f} {base_s / seconds:7.2f}x  {s['total_accuracy']:.2f}  "
            f"{s['date_accuracy']:.2f}     {s['company_accuracy']:.2f}     "
            f"{s['address_accuracy']:.2f}    {s['stp_rate']:.2f}    {s['stp_precision']:.3f}"
        )
    print(f"{'claims-ocr, all pages one call':30} {batched:7.2f} {base_s / batched:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
