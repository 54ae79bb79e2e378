"""Dev loop for claim-field extraction on the SROIE dev receipts.

Loads each receipt's OCR output (the real engine's cache, or the dataset's box/
transcripts as a stand-in with confidence 1.0), runs `extract_claim`, writes one JSON
line per receipt and scores them with the shared `sroie_score.py`.

    python scripts/tune_extraction.py ../shared/datasets/sroie-dev --source box --range 100-149
    python scripts/tune_extraction.py DATASET --source ocr --ocr-cache CACHE_DIR --show 104

DATASET is a SROIE-style folder (``box/``, ``key/``); CACHE_DIR holds one JSON of engine
output per receipt. Nothing is written outside a temporary folder unless ``--out`` says.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from services.extraction import ClaimExtraction, extract_claim
from services.extraction.layout import build_rows
from services.ocr.result import PageText, TextLine, page_from_json, quad

#: The shared scorer, where CI and developers keep ``shared/`` beside the checkout.
DEFAULT_SCORER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "sroie_score.py"


def page_from_box(path: Path) -> PageText:
    """A PageText from a SROIE box/ file (8 polygon coordinates, then the transcript)."""
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = raw.split(",", 8)
        if len(parts) < 9 or not parts[8].strip():
            continue
        xs = [float(v) for v in parts[0:8:2]]
        ys = [float(v) for v in parts[1:8:2]]
        box = quad(zip(xs, ys, strict=True))
        text = parts[8]
        lines.append(TextLine(text, box, 1.0, (1.0,) * len(text)))
    width = int(max((ln.right for ln in lines), default=1))
    height = int(max((ln.bottom for ln in lines), default=1))
    return PageText(width, height, tuple(lines))


def page_from_cache(path: Path) -> PageText:
    """A PageText from the OCR cache's JSON form."""
    return page_from_json(json.loads(path.read_text(encoding="utf-8")))


def load(stem: str, args: argparse.Namespace) -> PageText:
    if args.source == "ocr":
        return page_from_cache(args.ocr_cache / f"{stem}.json")
    return page_from_box(args.dataset / "box" / f"{stem}.csv")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dataset", type=Path, help="SROIE-style folder with box/ and key/")
    ap.add_argument("--source", choices=["ocr", "box"], default="box")
    ap.add_argument("--ocr-cache", type=Path, help="with --source ocr: folder of engine output")
    ap.add_argument("--scorer", type=Path, default=DEFAULT_SCORER, help="sroie_score.py")
    ap.add_argument("--range", default="0-99", help="receipt numbers, e.g. 0-99 or 100-149")
    ap.add_argument("--today", default="2025-01-01", type=date.fromisoformat)
    ap.add_argument("--threshold", type=float, default=0.90)
    ap.add_argument("--out", type=Path, default=None, help="keep the JSON lines here")
    ap.add_argument("--show", default="", help="comma-separated receipts to print in detail")
    ap.add_argument("--errors", action="store_true", help="print every wrong field")
    args = ap.parse_args(argv)
    if args.source == "ocr" and args.ocr_cache is None:
        ap.error("--source ocr needs --ocr-cache")

    lo, hi = (int(v) for v in args.range.split("-"))
    stems = [f"{i:03d}" for i in range(lo, hi + 1)]
    show = {s.zfill(3) for s in args.show.split(",") if s}
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "key"
        keys.mkdir()
        out = args.out or Path(tmp) / "pred.jsonl"
        with out.open("w", encoding="utf-8") as fh:
            for stem in stems:
                key_path = args.dataset / "key" / f"{stem}.json"
                (keys / f"{stem}.json").write_bytes(key_path.read_bytes())
                page = load(stem, args)
                result = extract_claim([page], today=args.today, threshold=args.threshold)
                record = {
                    "file": f"img/{stem}.jpg",
                    "route": result.route,
                    "confidence": result.confidence,
                    "fields": result.fields,
                }
                fh.write(json.dumps(record) + "\n")
                key = json.loads(key_path.read_text(errors="replace"))
                if stem in show:
                    for row in build_rows([page]):
                        print(f"  {row.index:3d} y={row.rel_y:.2f} x={row.rel_left:.2f} {row.text}")
                if stem in show or args.errors:
                    _report(stem, key, result, args.scorer)
        proc = subprocess.run(
            [sys.executable, str(args.scorer), str(out), str(keys)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(proc.stdout, end="")
    return 0


def _report(stem: str, key: dict, result: ClaimExtraction, scorer: Path) -> None:
    sys.path.insert(0, str(scorer.parent))
    import sroie_score as sc

    f = result.fields
    checks = {
        "total": (sc.norm_total(f["total_amount"]), sc.norm_total(key.get("total"))),
        "date": (sc.parse_iso(f["service_date"]), sc.parse_key_date(key.get("date", ""))),
        "company": (sc.norm_text(f["provider_name"]), sc.norm_text(key.get("company"))),
        "address": (sc.norm_text(f["provider_address"]), sc.norm_text(key.get("address"))),
    }
    conf = result.field_confidence
    names = {"total": "total_amount", "date": "service_date", "company": "provider_name",
             "address": "provider_address"}  # fmt: skip
    for name, (got, want) in checks.items():
        if got != want or not got:
            print(f"{stem} {result.route:6s} {name:8s} conf={conf[names[name]]:.2f} "
                  f"got={got!s:.60} want={want!s:.60}")  # fmt: skip
    if result.route == "submit" and checks["total"][0] != checks["total"][1]:
        print(f"{stem} !!! WRONG TOTAL SUBMITTED")
    if result.route == "submit" and checks["date"][0] != checks["date"][1]:
        print(f"{stem} !!! WRONG DATE SUBMITTED")
    print(f"{stem} reasons: {[r.code for r in result.reasons]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
