#!/usr/bin/env python3
"""Accuracy of OCR + extraction on the shared SROIE receipts, cross-validated by merchant.

With no ``--dataset`` (``make eval``): all 400 shared receipts (sroie-dev 000-149 and
sroie-train 150-399), OCR output from the caches in ``data/eval/`` (receipts without one
are read by the engine from the settings and cached). Receipts are grouped by merchant
and split into folds so that no fold is judged by a calibration fitted on its own
merchants; it prints, per fold and pooled, the shared scorer's figures (field accuracy,
STP rate, STP precision) at the configured threshold with out-of-fold calibrated
confidence, the reliability table of each calibrated confidence, the threshold that
reaches the required auto-submit precision, and every wrong auto-submit. Routing is the
OCR step's: a receipt without an invoice number goes to review (the claim rules of
``services.recognition``; the email is taken to carry a policy number).

    python scripts/eval_sroie.py                                  # the cross-validated report
    python scripts/eval_sroie.py --dataset ../shared/datasets/sroie-train --ocr-cache DIR

With ``--dataset``: the scorer's printout for that one folder, as run by the product
(shipped calibration), and the per-page OCR time (median after warm-up).
``--ocr-cache`` keeps each receipt's engine output (one JSON per receipt) and reuses it.

The extraction rules themselves were tuned by hand while looking at these receipts
(sroie-dev, and sroie-train's errors since): cross-validation keeps the calibration and
the threshold honest, not the rules, whose field accuracy here is a fit, not a forecast.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import calibrate_confidence as cc  # noqa: E402  (scripts/ is on sys.path as the script's folder)
import train_candidate_scorer as tcs  # noqa: E402

# Auto-submitted claims must be this often right (total and date) to choose a threshold.
REQUIRED_PRECISION = 0.995
# Thresholds shown beside the chosen and the configured one.
SHOWN_THRESHOLDS = (0.5, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)


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


class _Reader:
    """Reads receipts as the product does, through a cache of engine output."""

    def __init__(self, settings: Any, today: date, threshold: float) -> None:
        self.settings = settings
        self.today = today
        self.threshold = threshold
        self.engine: _Recording | None = None

    def read(self, path: Path, cached: Path | None) -> tuple[Any, bool]:
        """(DocumentResult, whether the engine ran) for one image."""
        from services.claim_reader import DocumentResult, read_documents
        from services.extraction import extract_claim
        from services.ocr.pages import PageLimits
        from services.ocr.result import page_from_json, page_to_json

        if cached is not None and cached.exists():
            pages = [page_from_json(p) for p in json.loads(cached.read_text("utf-8"))]
            extraction = extract_claim(pages, today=self.today, threshold=self.threshold)
            return DocumentResult(str(path), extraction, len(pages), 0.0), False
        if self.engine is None:
            from workers.wiring import build_ocr_engine

            self.engine = _Recording(build_ocr_engine(self.settings))
        self.engine.read_pages.clear()
        (result,) = read_documents(
            self.engine,
            [(str(path), path.read_bytes())],
            limits=PageLimits(pdf_dpi=self.settings.pdf_dpi),
            threshold=self.threshold,
            today=self.today,
        )
        if cached is not None and result.error_code is None:
            pages_json = [page_to_json(p) for p in self.engine.read_pages]
            cached.write_text(json.dumps(pages_json), encoding="utf-8")
        return result, True


def score_dataset(args: argparse.Namespace, settings: Any) -> int:
    """One folder, as the product reads it: the shared scorer's printout and OCR time."""
    from services.claim_reader import result_record

    images_dir = args.images or args.dataset / "img"
    keys_dir = args.keys or args.dataset / "key"
    out_path = args.out or ROOT / f"data/eval/{args.dataset.resolve().name}.jsonl"
    threshold = args.threshold or settings.ocr_high_confidence_threshold
    reader = _Reader(settings, args.today or date.today(), threshold)
    images = sorted(images_dir.glob("*.jpg"))[: args.limit]
    if args.ocr_cache is not None:
        args.ocr_cache.mkdir(parents=True, exist_ok=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    times: list[float] = []
    with out_path.open("w", encoding="utf-8") as out:
        for index, path in enumerate(images):
            cached = args.ocr_cache / f"{path.stem}.json" if args.ocr_cache else None
            started = time.perf_counter()
            result, ran = reader.read(path, cached)
            if ran and index >= args.warmup:
                times.append(time.perf_counter() - started)
            out.write(json.dumps(result_record(result), ensure_ascii=False) + "\n")
            print(f"\r{index + 1}/{len(images)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    subprocess.run([sys.executable, str(args.scorer), str(out_path), str(keys_dir)], check=True)
    if times and reader.engine is not None:
        print(
            f"engine {reader.engine.name} on {settings.ocr_device}: {len(times)} pages timed, "
            f"median {statistics.median(times):.2f} s/page, "
            f"p90 {sorted(times)[int(0.9 * len(times))]:.2f} s/page"
        )
    return 0


def fill_caches(settings: Any) -> None:
    """Run OCR for every shared receipt that has no cached engine output yet."""
    reader = _Reader(settings, cc.TODAY, settings.ocr_high_confidence_threshold)
    for dataset, cache in cc.DATASETS:
        missing = [
            p
            for p in sorted((dataset / "img").glob("*.jpg"))
            if not (cache / f"{p.stem}.json").exists()
        ]
        if missing:
            cache.mkdir(parents=True, exist_ok=True)
            print(f"OCR for {len(missing)} receipts of {dataset.name} (cached in {cache})")
        for i, path in enumerate(missing):
            reader.read(path, cache / f"{path.stem}.json")
            print(f"\r{i + 1}/{len(missing)}", end="", file=sys.stderr, flush=True)
        if missing:
            print(file=sys.stderr)


def fold_scores(
    calibrated: Sequence[cc.Calibrated], threshold: float, scorer: Any, folds: int
) -> list[dict[str, Any]]:
    """The shared scorer's figures per fold, routed with out-of-fold confidences."""
    results = []
    for fold in range(folds):
        members = [c for c in calibrated if c.fold == fold]
        with tempfile.TemporaryDirectory() as tmp:
            keys = Path(tmp) / "key"
            keys.mkdir()
            preds = Path(tmp) / "pred.jsonl"
            with preds.open("w", encoding="utf-8") as out:
                for c in members:
                    r = c.outcome.receipt
                    (keys / f"{r.receipt_id}.json").write_text(json.dumps(r.key), "utf-8")
                    record = {
                        "file": str(r.image),
                        "route": "submit" if c.submitted(threshold) else "review",
                        "confidence": c.claim_confidence,
                        "fields": c.outcome.extraction.fields,
                    }
                    out.write(json.dumps(record) + "\n")
            results.append(scorer.score(preds, keys))
    return results


def print_fold_table(
    scores: Sequence[dict[str, Any]], calibrated: Sequence[cc.Calibrated], threshold: float
) -> None:
    fields = ("total", "date", "company", "address")
    print(
        f"\nMerchant-split cross-validation at threshold {threshold:.4f} "
        "(out-of-fold calibrated confidence; the shared scorer's figures per fold)"
    )
    print(
        f"{'fold':>5} {'receipts':>8} {'merchants':>9} "
        + " ".join(f"{f:>8}" for f in fields)
        + f" {'stp_rate':>9} {'stp_prec':>9}"
    )
    totals = dict.fromkeys(fields, 0)
    n_all = submitted_all = right_all = 0
    for fold, s in enumerate(scores):
        members = [c for c in calibrated if c.fold == fold]
        merchants = len(
            {cc.merchant_name(c.outcome.receipt.key.get("company", "")) for c in members}
        )
        n = s["receipts"]
        submitted = round(s["stp_rate"] * n)
        right = round((s["stp_precision"] or 0.0) * submitted)
        n_all, submitted_all, right_all = n_all + n, submitted_all + submitted, right_all + right
        for f in fields:
            totals[f] += round(s[f"{f}_accuracy"] * n)
        prec = f"{s['stp_precision']:.4f}" if s["stp_precision"] is not None else "-"
        print(
            f"{fold:>5} {n:>8} {merchants:>9} "
            + " ".join(f"{s[f + '_accuracy']:>8.4f}" for f in fields)
            + f" {s['stp_rate']:>9.4f} {prec:>9}"
        )
    prec = f"{right_all / submitted_all:.4f}" if submitted_all else "-"
    print(
        f"{'all':>5} {n_all:>8} {'':>9} "
        + " ".join(f"{totals[f] / n_all:>8.4f}" for f in fields)
        + f" {submitted_all / n_all:>9.4f} {prec:>9}"
    )
    print(
        f"      ({submitted_all} of {n_all} auto-submitted, {submitted_all - right_all} "
        "with total or date wrong)"
    )
    # The scorer's counts and this script's per-receipt view must agree.
    mine = cc.submit_at(calibrated, threshold)
    if (mine.submitted, mine.right) != (submitted_all, right_all):
        raise SystemExit(f"scorer and per-receipt counts differ: {mine} vs scorer")


def print_reliability(
    calibrated: Sequence[cc.Calibrated], outcomes: Sequence[cc.Outcome], bins: int
) -> None:
    from services.extraction.calibration import expected_calibration_error, reliability_table

    print(
        "\nReliability of out-of-fold calibrated confidence (receipts where the field "
        "was read; 'overall' = total and date both right)"
    )
    for name in cc.REPORTED:
        read = [c for c in calibrated if c.outcome.has_value[name]]
        conf = [c.confidence[name] for c in read]
        right = [c.outcome.right[name] for c in read]
        table = reliability_table(conf, right, bins)
        raw = reliability_table(
            [o.raw[name] for o in outcomes if o.has_value[name]],
            [o.right[name] for o in outcomes if o.has_value[name]],
            bins,
        )
        ece, ece_raw = expected_calibration_error(table), expected_calibration_error(raw)
        floor = sampling_ece(conf, bins)
        print(
            f"\n{name}: {len(read)} read of {len(calibrated)}, accuracy "
            f"{sum(right) / len(read):.4f}, ECE {ece:.4f} (raw confidence: {ece_raw:.4f}; "
            f"a perfectly calibrated model would show {floor:.4f} on this many receipts)"
        )
        print(f"  {'bin':>11} {'count':>6} {'confidence':>10} {'accuracy':>9}")
        for b in table:
            print(
                f"  {b.low:.1f} - {b.high:.1f} {b.count:>6} {b.mean_confidence:>10.4f} "
                f"{b.accuracy:>9.4f}"
            )


def sampling_ece(confidences: Sequence[float], bins: int, draws: int = 200) -> float:
    """The ECE a perfectly calibrated model shows on this sample from chance alone.

    Outcomes are drawn right with exactly the stated probability (fixed seed); the mean
    ECE over the draws is the noise floor that a measured ECE is to be read against.
    """
    from services.extraction.calibration import expected_calibration_error, reliability_table

    rng = random.Random(0)
    total = 0.0
    for _ in range(draws):
        drawn = [rng.random() < c for c in confidences]
        total += expected_calibration_error(reliability_table(confidences, drawn, bins))
    return total / draws


def nested_threshold(
    outcomes: Sequence[cc.Outcome],
    folds: Sequence[int],
    precision: float,
    judge: cc.Judge = cc.strictly_right,
) -> tuple[cc.SubmitPoint, list[float | None]]:
    """Auto-submission when each fold's threshold AND calibration come from the other folds.

    The threshold is chosen on the other folds' own out-of-fold predictions, so the
    figure has seen neither the fold's merchants nor its outcomes.
    """
    chosen: list[float | None] = []
    submitted = right = 0
    for fold in sorted(set(folds)):
        inner = [(o, f) for o, f in zip(outcomes, folds, strict=True) if f != fold]
        inner_oof = cc.out_of_fold([o for o, _ in inner], [f for _, f in inner])
        point = cc.choose_threshold(inner_oof, precision, judge)
        chosen.append(point.threshold if point else None)
        calibration = cc.fit_calibration([o for o, _ in inner])
        for o, f in zip(outcomes, folds, strict=True):
            if f == fold and point is not None:
                c = cc.calibrate(o, calibration, fold)
                if c.submitted(point.threshold):
                    submitted += 1
                    right += judge(o)
    return cc.SubmitPoint(-1.0, submitted, right, len(outcomes)), chosen


def paid_right(outcome: cc.Outcome, scorer: Any) -> bool:
    """Right, or the total is the amount paid where the key gives another total (the key
    rounded to 5 sen, or the labelled amount paid: ``cc.paid_as_keyed``)."""
    if outcome.right["overall"]:
        return True
    if not outcome.right["service_date"]:
        return False
    ours = scorer.norm_total(outcome.extraction.fields["total_amount"])
    key = scorer.norm_total(outcome.receipt.key.get("total"))
    return cc.paid_as_keyed(ours, key, outcome.receipt.amount_paid)


def print_thresholds(
    oof: Sequence[cc.Calibrated],
    outcomes: Sequence[cc.Outcome],
    folds: Sequence[int],
    configured: float,
    precision: float,
    judge: cc.Judge,
) -> cc.SubmitPoint | None:
    """The submission curve, the chosen threshold and the nested-CV check, for one judge."""
    chosen = cc.choose_threshold(oof, precision, judge)
    shown = sorted({*SHOWN_THRESHOLDS, configured, *([chosen.threshold] if chosen else [])})
    print(f"  {'threshold':>9} {'submitted':>9} {'stp_rate':>8} {'wrong':>5} {'precision':>9}")
    for t in shown:
        p = cc.submit_at(oof, t, judge)
        prec = f"{p.precision:.4f}" if p.precision is not None else "-"
        mark = " <- chosen" if chosen and t == chosen.threshold else ""
        mark += " <- configured" if t == configured else ""
        print(
            f"  {t:>9.4f} {p.submitted:>9} {p.rate:>8.4f} {p.submitted - p.right:>5} "
            f"{prec:>9}{mark}"
        )
    if chosen is None:
        print(f"  no threshold reaches precision {precision}")
    else:
        gates = sorted({c.gate for c in oof if not c.outcome.blocked})
        below = max((g for g in gates if g < chosen.threshold), default=0.0)
        print(
            f"  chosen: the lowest threshold at and above which precision >= {precision}: "
            f"{chosen.threshold:.4f} (any value in ({below:.4f}, {chosen.threshold:.4f}] "
            f"routes these receipts alike); STP rate {chosen.rate:.4f}, "
            f"{chosen.submitted} submitted, {chosen.submitted - chosen.right} wrong"
        )
    nested, per_fold = nested_threshold(outcomes, folds, precision, judge)
    shown_folds = ", ".join("none" if t is None else f"{t:.4f}" for t in per_fold)
    prec = f"{nested.precision:.4f}" if nested.precision is not None else "-"
    print(
        f"  nested (each fold's threshold chosen on the other folds: {shown_folds}): "
        f"STP rate {nested.rate:.4f}, precision {prec}, "
        f"{nested.submitted - nested.right} wrong of {nested.submitted}"
    )
    return chosen


def why_wrong(c: cc.Calibrated, scorer: Any) -> str:
    """What differs between an auto-submitted claim and its key, in the scorer's terms."""
    from services.extraction.layout import build_rows

    o, key = c.outcome, c.outcome.receipt.key
    notes = []
    if not o.right["total_amount"]:
        ours = scorer.norm_total(o.extraction.fields["total_amount"])
        theirs = scorer.norm_total(key.get("total"))
        if theirs is None:
            notes.append(f"total: the key has no total ({key.get('total')!r}); ours {ours}")
        else:
            note = f"total: ours {ours}, key {theirs}"
            if o.receipt.amount_paid is not None and ours == o.receipt.amount_paid:
                note += " (the key is not the amount paid, ours is: sroie_amount_paid.csv)"
            elif cc.paid_as_keyed(ours, theirs):
                note += " (the key is the unrounded total; ours is it rounded to 5 sen)"
            printed = [r.text for r in build_rows(o.receipt.pages) if f"{theirs:.2f}" in r.text]
            if printed:
                note += f"; the key's amount is printed on {printed[0]!r}"
            evidence = o.extraction.field_evidence.get("total_amount")
            if evidence is not None:
                note += f", ours on {evidence.as_json().get('text')!r}"
            notes.append(note)
    if not o.right["service_date"]:
        notes.append(f"date: ours {o.extraction.fields['service_date']}, key {key.get('date')!r}")
    return "; ".join(notes)


def check_shipped(outcomes: Sequence[cc.Outcome], threshold: float) -> None:
    """The product's own routing (shipped calibration.json) against this script's model
    of it, and whether the shipped maps are those the current code and data give."""
    from services.extraction import extract_claim
    from services.extraction.calibration import load_calibration
    from services.recognition import apply_claim_rules

    shipped = load_calibration()
    differ = 0
    for o in outcomes:
        modelled = cc.calibrate(o, shipped, -1)
        ex = extract_claim(o.receipt.pages, today=cc.TODAY, threshold=threshold)
        ex = apply_claim_rules(ex, policy_number="from the email")
        route = "submit" if modelled.submitted(threshold) else "review"
        if ex.route != route or abs(ex.confidence - modelled.claim_confidence) > 1e-4:
            differ += 1
    fresh = cc.fit_calibration(outcomes)
    stale = dict(fresh.maps) != dict(shipped.maps)
    point = cc.submit_at([cc.calibrate(o, shipped, -1) for o in outcomes], threshold)
    prec = f"{point.precision:.4f}" if point.precision is not None else "-"
    print(
        f"\nShipped calibration, in-sample (fitted on these receipts, so optimistic): STP rate "
        f"{point.rate:.4f}, precision {prec} at {threshold:.4f}; extract_claim and this "
        f"report's routing model disagree on {differ} receipts"
    )
    if stale:
        print(
            "  services/extraction/calibration.json is not what the current code fits: run "
            "scripts/calibrate_confidence.py"
        )
    if differ:
        raise SystemExit("the report's routing model no longer matches extract_claim")


def fold_outcomes(
    receipts: Sequence[cc.Receipt], folds: Sequence[int], scorer: Any
) -> list[cc.Outcome]:
    """Each receipt extracted with a learned candidate scorer fitted on the other folds
    (for the fields the shipped scorer decides), so no figure here is judged by a model
    that saw the receipt's merchant."""
    from services.extraction.candidate_scorer import CandidateScorer, load_candidate_scorer

    per_field = {
        name: tcs.fold_models(name, receipts, scorer, folds)
        for name in load_candidate_scorer().models
    }
    return [
        cc.outcome(
            r,
            scorer,
            candidate_scorer=CandidateScorer({n: m[f] for n, m in per_field.items()}),
        )
        for r, f in zip(receipts, folds, strict=True)
    ]


def cross_validate(args: argparse.Namespace, settings: Any) -> int:
    """The merchant-split cross-validated report over the 400 shared receipts."""
    fill_caches(settings)
    scorer = cc.load_scorer(args.scorer)
    receipts = cc.load_receipts()
    shipped_outcomes = [cc.outcome(r, scorer) for r in receipts]
    groups = cc.merchant_groups([r.key.get("company", "") for r in receipts])
    folds = cc.merchant_folds(groups, args.folds)
    outcomes = fold_outcomes(receipts, folds, scorer)
    oof = cc.out_of_fold(outcomes, folds)
    threshold = args.threshold or settings.ocr_high_confidence_threshold
    print(
        f"{len(receipts)} receipts, {len(set(groups))} merchants, {args.folds} folds "
        f"(merchant-disjoint); {sum(o.blocked for o in outcomes)} go to review for a "
        "reason other than confidence at any threshold"
    )
    print_fold_table(fold_scores(oof, threshold, scorer, args.folds), oof, threshold)
    print_reliability(oof, outcomes, args.bins)

    print(
        "\nAuto-submission vs threshold (out-of-fold calibrated), judged as the scorer does "
        f"(total and date equal the key's); required precision {args.precision}"
    )
    chosen = print_thresholds(oof, outcomes, folds, threshold, args.precision, cc.strictly_right)
    print(
        "\nThe same, judging the total as the amount paid: the key's total rounded to 5 sen "
        "(keys that give the unrounded total of a cash-rounded receipt), or the amount paid "
        "where tests/data/sroie_amount_paid.csv says the key gives another total"
    )
    print_thresholds(
        oof, outcomes, folds, threshold, args.precision, lambda o: paid_right(o, scorer)
    )
    check_shipped(shipped_outcomes, threshold)

    for label, t in (("configured", threshold), ("chosen", chosen.threshold if chosen else None)):
        if t is None:
            continue
        wrong = [c for c in oof if c.submitted(t) and not c.outcome.right["overall"]]
        print(f"\nWrong auto-submits at the {label} threshold {t:.4f}: {len(wrong)}")
        for c in wrong:
            r = c.outcome.receipt
            print(
                f"  {r.receipt_id} ({r.image.parent.parent.name}, confidence "
                f"{c.claim_confidence:.4f}): {why_wrong(c, scorer)}"
            )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", type=Path, default=None, help="score one SROIE-style folder instead"
    )
    parser.add_argument("--images", type=Path, default=None, help="default: DATASET/img")
    parser.add_argument("--keys", type=Path, default=None, help="default: DATASET/key")
    parser.add_argument("--scorer", type=Path, default=SHARED / "tools/sroie_score.py")
    parser.add_argument("--out", type=Path, default=None, help="default: data/eval/NAME.jsonl")
    parser.add_argument("--ocr-cache", type=Path, default=None, help="reuse engine output here")
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    parser.add_argument("--limit", type=int, default=None, help="only the first N receipts")
    parser.add_argument("--warmup", type=int, default=3, help="pages left out of the timing")
    parser.add_argument("--threshold", type=float, default=None, help="default: settings")
    parser.add_argument("--folds", type=int, default=cc.FOLDS, help="merchant folds")
    parser.add_argument("--bins", type=int, default=10, help="reliability table bins")
    parser.add_argument("--precision", type=float, default=REQUIRED_PRECISION)
    args = parser.parse_args()

    from services.config import get_settings

    settings = get_settings()
    if args.dataset is not None:
        return score_dataset(args, settings)
    return cross_validate(args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
