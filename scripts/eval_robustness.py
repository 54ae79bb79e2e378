#!/usr/bin/env python3
"""Accuracy per receipt variant (rotated, skewed, warped, compressed, small, blurred, shadowed).

Every claim routed to ``submit`` reaches NCB unseen, so a degraded photo must be read
right or sent to review. For N receipts of a SROIE-style set (spread evenly over it, so
the choice is fixed), this reads the original and every variant of
``tests/support/receipt_variants.py`` through the real pipeline (OCR + extraction) and
prints, per variant, total and date accuracy, the share routed to submit, and the WRONG
AUTO-SUBMITS: submitted with a total or date that differs from the key, compared as
``../shared/tools/sroie_score.py`` compares them. Takes minutes on a CPU.

    python scripts/eval_robustness.py                 # 20 dev receipts, every variant
    python scripts/eval_robustness.py --limit 5 --variants rotate90 blur --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2

# The variant builders live with the test that uses them; the repository root makes
# them importable.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark_ocr import pick_images  # noqa: E402
from calibrate_confidence import load_scorer  # noqa: E402

from tests.support.receipt_variants import VARIANTS, encode_png, make_variant  # noqa: E402

SHARED = ROOT.parent / "shared"
ORIGINAL = "original"


@dataclass
class Outcome:
    """One page read: what was decided and whether it matches the key."""

    receipt: str
    variant: str
    route: str
    total_ok: bool
    date_ok: bool
    reasons: list[str]
    seconds: float
    fields: dict[str, str | None]  # what was read, for --details (public SROIE data only)

    @property
    def wrong_submit(self) -> bool:
        return self.route == "submit" and not (self.total_ok and self.date_ok)


def judge(scorer: ModuleType, fields: dict[str, Any], key: dict[str, Any]) -> tuple[bool, bool]:
    """(total right, date right), normalised as the shared scorer does."""
    total = scorer.norm_total(fields.get("total_amount"))
    when = scorer.parse_iso(fields.get("service_date"))
    total_ok = total is not None and total == scorer.norm_total(key.get("total"))
    date_ok = when is not None and when == scorer.parse_key_date(key.get("date", ""))
    return total_ok, date_ok


def summarise(outcomes: list[Outcome], names: list[str]) -> list[dict[str, Any]]:
    """One row per variant: counts and rates over the receipts read.

    ``new_wrong`` counts the wrong auto-submits of receipts whose original was read right:
    the ones the variant itself caused, apart from keys that disagree with the receipt
    (a few SROIE keys give the exact total where the cash-rounded one was paid).
    """
    read_right = {o.receipt for o in outcomes if o.variant == ORIGINAL and o.total_ok and o.date_ok}
    rows = []
    for name in names:
        mine = [o for o in outcomes if o.variant == name]
        n = len(mine) or 1
        rows.append(
            {
                "variant": name,
                "receipts": len(mine),
                "total_accuracy": round(sum(o.total_ok for o in mine) / n, 3),
                "date_accuracy": round(sum(o.date_ok for o in mine) / n, 3),
                "submit_rate": round(sum(o.route == "submit" for o in mine) / n, 3),
                "wrong_auto_submits": sum(o.wrong_submit for o in mine),
                "new_wrong": sum(o.wrong_submit and o.receipt in read_right for o in mine),
                "wrong_receipts": [o.receipt for o in mine if o.wrong_submit],
                "median_seconds": round(statistics.median(o.seconds for o in mine), 2)
                if mine
                else 0.0,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'variant':12} {'n':>3} {'total':>6} {'date':>6} {'submit':>7} {'WRONG':>6} "
        f"{'new':>4} {'s/page':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['variant']:12} {r['receipts']:3d} {r['total_accuracy']:6.3f} "
            f"{r['date_accuracy']:6.3f} {r['submit_rate']:7.3f} {r['wrong_auto_submits']:6d} "
            f"{r['new_wrong']:4d} {r['median_seconds']:7.2f}"
        )
    wrong = [(r["variant"], s) for r in rows for s in r["wrong_receipts"]]
    print(f"wrong auto-submits: {len(wrong)}" + (f" {wrong}" if wrong else ""))
    print("new: wrong auto-submits of receipts whose original was read right")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=SHARED / "datasets/sroie-dev")
    parser.add_argument("--scorer", type=Path, default=SHARED / "tools/sroie_score.py")
    parser.add_argument("--limit", type=int, default=20, help="receipts, spread over the set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random variants")
    parser.add_argument(
        "--variants", nargs="+", choices=[ORIGINAL, *VARIANTS], default=None, help="default: all"
    )
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--details", type=Path, default=None, help="write every page's outcome")
    args = parser.parse_args(argv)

    from services.claim_reader import read_documents
    from services.config import get_settings
    from workers.wiring import build_ocr_engine, page_limits

    scorer = load_scorer(args.scorer)
    settings = get_settings()
    engine = build_ocr_engine(settings)
    limits = page_limits(settings)
    threshold = settings.ocr_high_confidence_threshold
    today = args.today or date.today()
    names: list[str] = args.variants or [ORIGINAL, *VARIANTS]
    receipts = pick_images([args.dataset / "img"], args.limit)  # spread evenly, as the benchmark

    outcomes: list[Outcome] = []
    for count, path in enumerate(receipts, start=1):
        key = json.loads((args.dataset / "key" / f"{path.stem}.json").read_text("utf-8"))
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot decode {path}")
        for name in names:
            if name == ORIGINAL:
                data = path.read_bytes()
            else:
                data = encode_png(make_variant(image, name, args.seed))
            started = time.perf_counter()
            (result,) = read_documents(
                engine,
                [(f"{path.stem}-{name}", data)],
                limits=limits,
                threshold=threshold,
                today=today,
            )
            seconds = time.perf_counter() - started
            ex = result.extraction
            total_ok, date_ok = judge(scorer, ex.fields, key)
            reasons = [r.code for r in ex.reasons]
            outcomes.append(
                Outcome(
                    path.stem,
                    name,
                    ex.route,
                    total_ok,
                    date_ok,
                    reasons,
                    seconds,
                    {k: ex.fields.get(k) for k in ("total_amount", "service_date")},
                )
            )
        print(f"\r{count}/{len(receipts)} receipts", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    rows = summarise(outcomes, names)
    if args.details is not None:
        args.details.write_text(
            "".join(json.dumps(asdict(o)) + "\n" for o in outcomes), encoding="utf-8"
        )
    if args.json:
        print(json.dumps({"receipts": [p.stem for p in receipts], "variants": rows}))
    else:
        print_table(rows)
    return 1 if any(r["wrong_auto_submits"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
