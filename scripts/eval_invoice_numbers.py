#!/usr/bin/env python3
"""Invoice-number recall and precision of extract_claim on the 400 labelled SROIE receipts.

NCB files a claim under its invoice number, so a wrong one submitted unseen is a claim
filed against another document; this script measures how often the extraction finds the
number, how often what it returns is right, and how often a number confident enough to
auto-submit (confidence >= ``--threshold``, 0.90 by default) is right.

    python scripts/eval_invoice_numbers.py                 # dev + train caches, pooled
    python scripts/eval_invoice_numbers.py --show errors   # list every miss and wrong value
    python scripts/eval_invoice_numbers.py --receipts 300-399  # a subset
    python scripts/eval_invoice_numbers.py --propose 0-149 # labelling aid (see below)

Confidences are calibrated as ``make eval`` calibrates them: each receipt by maps fitted
on the other merchant folds (``--shipped-calibration``: the shipped maps, fitted on these
very receipts, so optimistic).

Inputs: the engine's output cached per receipt (``data/eval/ocr-sroie-dev/NNN.json``,
``data/eval/ocr-sroie-train/NNN.json``, written by ``eval_sroie.py --ocr-cache``), the
labels in ``tests/data/sroie_invoice_numbers.csv`` and, for the folds, the datasets' key
files (``../shared/datasets/sroie-*/key``). Receipts without a cache file are skipped and
counted.

Scoring. A value is right when it equals the label after removing spaces (``CS 67832``
and ``CS67832`` are the same number; receipts print such spaces inconsistently and NCB
compares without them). Nothing else is forgiven: case is compared as returned (the
extraction upper-cases), and a letter O returned for the digit 0 (or I for 1, S for 5) is
wrong. Recall = right values / receipts that print a number; precision = right values /
values returned (a value returned for a receipt labelled empty counts as wrong); auto
precision = the same among values with confidence >= threshold, auto recall = right
auto values / receipts that print a number. The operating points repeat recall and
precision counting only values at or above each confidence, as if the rest had been
withheld.

Folds. Figures are printed for dev (000-149, where the rules are developed), for train
(150-399, held out) and pooled, then per merchant-split fold: receipts are grouped by the
key's company exactly as ``make eval`` groups them (``calibrate_confidence.merchant_groups``:
legal suffixes, branches and punctuation dropped, near-equal spellings one merchant) and
whole merchants are dealt to ``--folds`` folds, largest first, so no merchant appears in
two folds. The rules are not fitted to data, so the folds
show how the figures vary across merchants rather than train/test gaps; the dev/train
split is the held-out check.

Labels (``tests/data/sroie_invoice_numbers.csv``, ``receipt,invoice_number``, one row per
receipt 000-399, empty when the receipt prints no document number) were made from the
``box/`` ground-truth transcripts, not from OCR output. Definition: the number that
identifies this document as the issuer filed it, in this order of preference when a
receipt prints several:

1. a number labelled as the invoice, tax invoice, receipt, bill, cash bill, cash sales,
   document, slip, credit note or sales number (``INVOICE NO``, ``INV#``, ``TAXINV``,
   ``RECEIPT #``, ``RCPT NO``, ``RN``, ``BILL NO``, ``CB#``, ``CASH SALES NO``, ``DOC NO``,
   ``DOCUMENT NO``, ``SLIP NO``, ``C/N NO``, ``SALES NO``, or a bare ``NO.:`` heading the
   document);
2. otherwise a transaction number (``TRANS``, ``TRN``, ``TRANSACTION NO``) or a restaurant's
   guest check number (``CHK``);
3. otherwise an order number (``ORDER``) when it is the only document number printed;
4. otherwise an unlabelled number in the document-number position, only where its form
   leaves no doubt: a receipt number printed beside the date and time
   (``... T2 R000011248``, ``14/04/2018 16:14 B999215``, ``#1000000163`` repeated in a
   barcode), or a tax invoice number repeated as ``#001-1105624#``.

Never the document number: GST/SST registration, company or business registration,
table, pax, queue, member or loyalty card, phone, cashier, staff, salesperson, terminal,
counter, POS, station, reference to another document (``REFER LCS03158``, a deposit's CS
number), reservation, ticket of a car park, auth code, account or survey codes. The value
is written as printed with spaces removed (``/ POS01`` after a bill number is the
terminal, not part of it; ``CS 67832`` becomes ``CS67832``).

How it was labelled. A view like ``--propose``'s printed, for each receipt, the visual
rows of its box transcript that carry a document-number keyword or a long digit run,
with the row that follows a bare label. Every one of the 400 receipts was read in that
view and a value written by hand; every receipt with no labelled candidate, with several
candidates that disagree (slip vs trans, order vs bill, invoice vs ref) or with an
unlabelled number was read in full (``--propose`` with one receipt id prints all rows),
and one whose number sat in a printed box was checked on the image. A script then
checked that every label occurs verbatim (spaces removed) in its receipt's transcript.
Where the engine read another number than the transcript and either could be right, the
image was looked at: the transcripts of 121 (``CS000012659`` for the printed
``CS00012659``), 256 (``01 148409`` for ``01-148409``) and 398 (``17688`` for ``17698``)
are wrong and those labels follow the image; for 196, 226, 229, 241, 254, 255 and 397
the image agrees with the transcript, and 182's print is too damaged to tell (transcript
kept). Judgement calls: receipts where no number is clearly the document's (a bare
register code such as ``C01 KL 001 038354``, a POS string glued to the date, a
bill-payment slip, a foreign receipt's ticket code) are labelled empty (9 receipts); an
order number is the label only where nothing else is printed (Domino's, a guest check);
a trailing ``#001-1105624#`` that repeats the layout of another merchant's ``TAXINV``
number is taken over a labelled ``ORDERNO``; a Segi ``REF NO`` whose tail is the invoice
number is taken where no ``INVOICE NO`` is printed; a Harvey Norman transaction number
printed under a ``TRANSAC`` column heading counts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import calibrate_confidence as cc
from calibrate_confidence import INVOICE_LABELS as LABELS
from calibrate_confidence import load_invoice_labels as load_labels
from calibrate_confidence import merchant_folds as deal_merchants
from calibrate_confidence import merchant_groups, same_number

from services.extraction import ClaimExtraction, extract_claim
from services.extraction.calibration import Calibration
from services.ocr.result import page_from_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHES = {
    "dev": (ROOT / "data/eval/ocr-sroie-dev", SHARED / "datasets/sroie-dev"),
    "train": (ROOT / "data/eval/ocr-sroie-train", SHARED / "datasets/sroie-train"),
}
# The bar: recall at this precision, at whatever confidence floor reaches it.
REQUIRED_PRECISION = 0.99


@dataclass(frozen=True)
class Outcome:
    """One receipt's label and what the extraction returned for it."""

    receipt: str
    split: str
    merchant: str
    expected: str  # "" when the receipt prints no document number
    got: str | None
    as_read: str | None
    confidence: float


def split_of(receipt: str) -> str:
    return "dev" if int(receipt) < 150 else "train"


def fold_calibrations(folds: int) -> dict[str, Calibration]:
    """Receipt id -> the confidence maps fitted on the other merchant folds (as ``make
    eval`` fits them), so no receipt's confidence was calibrated on its own merchant."""
    scorer = cc.load_scorer(SHARED / "tools/sroie_score.py")
    receipts = cc.load_receipts()
    outcomes = [cc.outcome(r, scorer) for r in receipts]
    fold_of = deal_merchants(merchant_groups([r.key.get("company", "") for r in receipts]), folds)
    fitted = cc.fit_per_fold(outcomes, fold_of, cc.fit_calibration)
    return {r.receipt_id: fitted[f] for r, f in zip(receipts, fold_of, strict=True)}


def evaluate(
    labels: dict[str, str],
    splits: Iterable[str],
    only: set[int] | None = None,
    calibrations: dict[str, Calibration] | None = None,
) -> tuple[list[Outcome], int]:
    """Run extract_claim over the cached OCR of every labelled receipt in ``splits``
    (and in ``only``, when given), calibrated by ``calibrations`` (default: shipped)."""
    outcomes: list[Outcome] = []
    skipped = 0
    wanted = set(splits)
    for receipt, expected in sorted(labels.items()):
        split = split_of(receipt)
        if split not in wanted or (only is not None and int(receipt) not in only):
            continue
        cache_dir, dataset = CACHES[split]
        cached = cache_dir / f"{receipt}.json"
        if not cached.exists():
            skipped += 1
            continue
        raw = json.loads(cached.read_text(encoding="utf-8"))
        pages = [page_from_json(p) for p in (raw if isinstance(raw, list) else [raw])]
        calibration = (calibrations or {}).get(receipt)
        claim = extract_claim(pages, today=date(2026, 1, 1), calibration=calibration)
        key = json.loads((dataset / "key" / f"{receipt}.json").read_text(encoding="utf-8"))
        outcomes.append(
            Outcome(
                receipt=receipt,
                split=split,
                merchant=str(key.get("company", "")),
                expected=expected,
                got=claim.fields.get("invoice_number"),
                as_read=_as_read(claim),
                confidence=claim.field_confidence.get("invoice_number", 0.0),
            )
        )
    return outcomes, skipped


def _as_read(claim: ClaimExtraction) -> str | None:
    """The OCR line the number was read from (for --show)."""
    evidence = claim.field_evidence.get("invoice_number")
    return evidence.text if evidence is not None else None


@dataclass(frozen=True)
class Scores:
    """What one set of receipts scored."""

    receipts: int
    printed: int
    returned: int
    right: int
    auto: int
    auto_right: int

    @property
    def recall(self) -> float:
        return self.right / self.printed if self.printed else 0.0

    @property
    def precision(self) -> float:
        return self.right / self.returned if self.returned else 1.0

    @property
    def auto_precision(self) -> float:
        return self.auto_right / self.auto if self.auto else 1.0

    @property
    def auto_recall(self) -> float:
        return self.auto_right / self.printed if self.printed else 0.0


def score(outcomes: Sequence[Outcome], threshold: float) -> Scores:
    """Counts behind recall, precision and the auto-submit figures."""
    returned = [o for o in outcomes if o.got is not None]
    auto = [o for o in returned if o.confidence >= threshold]
    return Scores(
        receipts=len(outcomes),
        printed=sum(1 for o in outcomes if o.expected),
        returned=len(returned),
        right=sum(1 for o in returned if o.expected and same_number(o.got, o.expected)),
        auto=len(auto),
        auto_right=sum(1 for o in auto if o.expected and same_number(o.got, o.expected)),
    )


def merchant_folds(outcomes: Sequence[Outcome], k: int) -> list[list[Outcome]]:
    """Whole merchants dealt to ``k`` folds, as ``make eval`` deals them
    (``calibrate_confidence.merchant_groups`` and ``merchant_folds``)."""
    fold_of = deal_merchants(merchant_groups([o.merchant for o in outcomes]), k)
    folds: list[list[Outcome]] = [[] for _ in range(k)]
    for outcome, fold in zip(outcomes, fold_of, strict=True):
        folds[fold].append(outcome)
    return folds


def _line(name: str, s: Scores) -> str:
    return (
        f"{name:<14} {s.receipts:>4} {s.printed:>7} {s.returned:>8} {s.right:>5} "
        f"{s.recall:>7.3f} {s.precision:>9.3f} {s.auto:>5} {s.auto_precision:>9.3f} "
        f"{s.auto_recall:>9.3f}"
    )


def report(outcomes: Sequence[Outcome], threshold: float, k: int) -> None:
    print(
        f"{'set':<14} {'n':>4} {'printed':>7} {'returned':>8} {'right':>5} {'recall':>7} "
        f"{'precision':>9} {'auto':>5} {'auto prec':>9} {'auto rec':>9}"
    )
    for split in ("dev", "train"):
        part = [o for o in outcomes if o.split == split]
        if part:
            print(_line(split, score(part, threshold)))
    print(_line("pooled", score(outcomes, threshold)))
    folds = merchant_folds(outcomes, k)
    fold_scores = [score(f, threshold) for f in folds if f]
    for i, s in enumerate(fold_scores):
        print(_line(f"fold {i + 1}", s))
    if fold_scores:
        recalls = [s.recall for s in fold_scores]
        precisions = [s.precision for s in fold_scores]
        autos = [s.auto_precision for s in fold_scores]
        print(
            f"merchant folds ({len(fold_scores)}, "
            f"{len(set(merchant_groups([o.merchant for o in outcomes])))} "
            f"merchants): recall min {min(recalls):.3f} mean {sum(recalls) / len(recalls):.3f}; "
            f"precision min {min(precisions):.3f} mean {sum(precisions) / len(precisions):.3f}; "
            f"auto precision min {min(autos):.3f}"
        )
    print("operating points (pooled; a value counts as returned only at this confidence):")
    for floor in (0.0, 0.5, 0.8, 0.85, threshold, 0.95):
        s = at_floor(outcomes, floor, threshold)
        print(f"  confidence >= {floor:.2f}: recall {s.recall:.3f} precision {s.precision:.3f}")
    best = best_operating_point(outcomes, REQUIRED_PRECISION)
    if best is None:
        print(f"  no confidence floor gives precision >= {REQUIRED_PRECISION}")
    else:
        floor, s = best
        print(
            f"  recall at precision >= {REQUIRED_PRECISION}: "
            f"confidence >= {floor:.4f}: recall {s.recall:.3f} precision {s.precision:.3f}"
        )
    print(f"auto = invoice-number confidence >= {threshold}; values compared without spaces")


def best_operating_point(
    outcomes: Sequence[Outcome], precision: float
) -> tuple[float, Scores] | None:
    """Recall at ``precision``: the confidence floor with the highest recall among those
    whose kept values reach ``precision``, with its scores (None when no floor does)."""
    best = None
    for floor in sorted({o.confidence for o in outcomes if o.got is not None}):
        s = at_floor(outcomes, floor, floor)
        if s.precision >= precision and (best is None or s.recall > best[1].recall):
            best = floor, s
    return best


def at_floor(outcomes: Sequence[Outcome], floor: float, threshold: float) -> Scores:
    """Scores counting a value as returned only at confidence ``floor`` or above."""
    return score([o if o.confidence >= floor else _dropped(o) for o in outcomes], threshold)


def _dropped(o: Outcome) -> Outcome:
    """``o`` as if the value had been withheld."""
    return Outcome(o.receipt, o.split, o.merchant, o.expected, None, None, 0.0)


def show(outcomes: Sequence[Outcome], what: str, threshold: float) -> None:
    for o in outcomes:
        right = same_number(o.got, o.expected) if o.expected else False
        wrong = o.got is not None and not right
        missed = bool(o.expected) and o.got is None
        if what == "errors" and not (wrong or missed):
            continue
        if what == "wrong" and not wrong:
            continue
        tag = "ok" if right else ("WRONG" if wrong else ("miss" if missed else "-"))
        auto = "AUTO" if o.got is not None and o.confidence >= threshold else ""
        print(
            f"{o.receipt} {tag:<5} {auto:<4} conf={o.confidence:.3f} expected={o.expected!r} "
            f"got={o.got!r} row={o.as_read!r} [{o.merchant}]"
        )


def propose(ids: Sequence[int]) -> None:
    """The labelling aid: document-number rows of each receipt's box transcript."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from tune_extraction import page_from_box

    from services.extraction.invoice import extract_invoice_number
    from services.extraction.layout import build_rows

    keyword = re.compile(
        r"INV|RECEIPT|RESIT|RCPT|BILL|\bBIL\b|DOC|SLIP|TRANS|TRN|TRX|TXN|ORDER|\bCHK\b|"
        r"C/N|SALES NO|\bRN\b|\bNO\b\s*[.:]|#|\b[A-Z]{1,4}[-/]?\d{5,}\b|\b\d{6,}\b",
        re.IGNORECASE,
    )
    for i in ids:
        stem = f"{i:03d}"
        _, dataset = CACHES[split_of(stem)]
        rows = build_rows([page_from_box(dataset / "box" / f"{stem}.csv")])
        rule = extract_invoice_number(rows)
        print(f"=== {stem}  rules: {rule.value!r}")
        for j, row in enumerate(rows):
            if len(ids) == 1 or keyword.search(row.text):
                after = rows[j + 1].text if j + 1 < len(rows) and len(row.text) < 28 else ""
                print(f"  {j:3d}| {row.text}" + (f"   >>> {after}" if after else ""))


def _ids(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--splits", default="dev,train", help="dev, train or dev,train")
    parser.add_argument("--threshold", type=float, default=0.90, help="auto-submit confidence")
    parser.add_argument("--folds", type=int, default=5, help="merchant-split folds")
    parser.add_argument("--show", choices=("errors", "wrong", "all"), default=None)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument(
        "--shipped-calibration",
        action="store_true",
        help="confidences as the product reports them (maps fitted on all these receipts)",
    )
    parser.add_argument("--receipts", metavar="IDS", help="only these, e.g. 216-399")
    parser.add_argument("--propose", metavar="IDS", help="e.g. 0-149 or 7,12: labelling aid")
    args = parser.parse_args(argv)
    if args.propose:
        propose(_ids(args.propose))
        return 0
    labels = load_labels(args.labels)
    only = set(_ids(args.receipts)) if args.receipts else None
    calibrations = None if args.shipped_calibration else fold_calibrations(args.folds)
    outcomes, skipped = evaluate(labels, args.splits.split(","), only, calibrations)
    if args.show:
        show(outcomes, args.show, args.threshold)
    report(outcomes, args.threshold, args.folds)
    if skipped:
        print(f"{skipped} labelled receipts had no OCR cache file and were skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
