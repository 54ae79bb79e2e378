#!/usr/bin/env python3
"""Receipts from other countries through the real reading path: none may be auto-submitted.

A claims office in Malaysia pays in ringgit; a receipt from abroad (dollars, pounds, euros;
month-first dates) must reach a person, never NCB as a ringgit claim. This renders
receipts of six countries (``services.demo.foreign``: US, GB, DE, FR, SG, AU), each with
its currency printed and without it (a till that prints none, a symbol lost to the
photo), degrades each like a phone photo (a seeded variant of
``tests/support/receipt_variants.py``: skewed, warped, compressed, blurred, shadowed, or
as drawn), reads it as the OCR worker does (OCR + extraction, claim currency MYR) and
prints, per country and currency form, how many were routed to submit (WRONG: every one
is a wrong auto-submit), the review reasons that held them, and how often total and date
were read right. Exit status 1 if any was auto-submitted. Takes a minute or two on a CPU.

These are generated receipts, not photos of real ones: they measure the routing rules on
clean layouts of known content, not the recogniser on real foreign paper.

    python scripts/eval_foreign.py                 # 8 receipts per country and form
    python scripts/eval_foreign.py --per-group 3 --countries US DE --json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.demo.foreign import COUNTRIES, foreign_spec  # noqa: E402
from services.demo.receipts import ReceiptSpec, render_receipt  # noqa: E402
from tests.support.receipt_variants import encode_png, make_variant  # noqa: E402

# How the photos differ from the drawn receipt ("original": as drawn).
PHOTO_VARIANTS = ("original", "skew+8", "skew-8", "perspective", "jpeg30", "blur", "shadow")
# Reasons that say why a foreign receipt was held, counted separately in the table.
SHOWN_REASONS = ("foreign_currency", "currency_unconfirmed", "ambiguous_date")
TODAY = date(2026, 1, 1)


def photo(country: str, symbol: bool, n: int, seed: int) -> tuple[ReceiptSpec, bytes, str]:
    """The ``n``-th receipt of a group: its spec, PNG bytes and the variant it was given."""
    rng = random.Random(f"{seed}-{country}-{symbol}-{n}")
    spec = foreign_spec(rng, country, symbol=symbol)
    drawn = cv2.cvtColor(
        np.asarray(render_receipt(spec, seed=rng.randint(0, 9999))), cv2.COLOR_RGB2BGR
    )
    variant = rng.choice(PHOTO_VARIANTS)
    image = drawn if variant == "original" else make_variant(drawn, variant, seed + n)
    return spec, encode_png(image), variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-group", type=int, default=8, help="receipts per country and form")
    parser.add_argument("--countries", nargs="+", choices=sorted(COUNTRIES), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args(argv)

    from services.claim_reader import read_documents
    from services.config import get_settings
    from workers.wiring import build_ocr_engine, page_limits

    settings = get_settings()
    engine = build_ocr_engine(settings)
    limits = page_limits(settings)
    rows: list[dict[str, Any]] = []
    wrong: list[str] = []
    for country in args.countries or list(COUNTRIES):
        for symbol in (True, False):
            made = [photo(country, symbol, n, args.seed) for n in range(args.per_group)]
            results = read_documents(
                engine,
                [(f"{country}-{int(symbol)}-{n}", data) for n, (_, data, _) in enumerate(made)],
                limits=limits,
                threshold=settings.ocr_high_confidence_threshold,
                today=TODAY,
                currency="MYR",
            )
            reasons: Counter[str] = Counter()
            total_ok = date_ok = submitted = 0
            for (spec, _, variant), result in zip(made, results, strict=True):
                ex = result.extraction
                reasons.update({r.code for r in ex.reasons})
                truth = spec.expected_fields()
                total_ok += ex.fields.get("total_amount") == truth["total"]
                date_ok += ex.fields.get("service_date") == truth["date"]
                if ex.route == "submit":
                    submitted += 1
                    wrong.append(f"{result.key} ({variant}): {ex.fields.get('currency')}")
            n = len(made)
            rows.append(
                {
                    "country": country,
                    "currency_printed": symbol,
                    "receipts": n,
                    "auto_submitted": submitted,
                    **{code: reasons[code] for code in SHOWN_REASONS},
                    "total_right": round(total_ok / n, 3),
                    "date_right": round(date_ok / n, 3),
                }
            )
            print(
                f"\r{country} {'with' if symbol else 'without'} currency", end="", file=sys.stderr
            )
    print(file=sys.stderr)
    if args.json:
        print(json.dumps({"rows": rows, "wrong_auto_submits": wrong}))
    else:
        print_table(rows, wrong)
    return 1 if wrong else 0


def print_table(rows: list[dict[str, Any]], wrong: list[str]) -> None:
    head = ("country", "currency", "n", "SUBMIT", *SHOWN_REASONS, "total", "date")
    print(
        f"{head[0]:7} {head[1]:8} {head[2]:>3} {head[3]:>6} "
        + " ".join(f"{h:>20}" for h in head[4:7])
        + f" {head[7]:>6} {head[8]:>6}"
    )
    for r in rows:
        shown = " ".join(f"{r[code]:>20}" for code in SHOWN_REASONS)
        printed = "printed" if r["currency_printed"] else "none"
        print(
            f"{r['country']:7} {printed:8} {r['receipts']:>3} {r['auto_submitted']:>6} {shown}"
            f" {r['total_right']:>6.2f} {r['date_right']:>6.2f}"
        )
    total = sum(r["receipts"] for r in rows)
    print(f"auto-submitted (all wrong: none is a ringgit claim): {len(wrong)} of {total}")
    for line in wrong:
        print(f"  {line}")


if __name__ == "__main__":
    raise SystemExit(main())
