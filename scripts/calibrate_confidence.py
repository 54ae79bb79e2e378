#!/usr/bin/env python3
"""Fit ``services/extraction/calibration.json``: raw field confidence -> chance it is right.

Reads the 400 shared SROIE receipts (sroie-dev 000-149 and sroie-train 150-399) from the
OCR caches that ``scripts/eval_sroie.py`` writes, runs ``extract_claim`` with raw
(uncalibrated) confidences, scores each field with the shared scorer's comparison rules,
and fits one map per field (total, date, company, address; the invoice number against the
labels in ``tests/data/sroie_invoice_numbers.csv``): isotonic regression, or Platt scaling
where that was better calibrated out of fold (``FITTERS``: address, invoice number). The
claim as a whole ("overall": total AND date right) is judged by the lesser of the two
calibrated confidences, as ``extract_claim`` reports it.
Deterministic: same caches and code, same file.

    python scripts/calibrate_confidence.py             # writes the package's calibration.json
    python scripts/calibrate_confidence.py --out /tmp/c.json

The cross-validation helpers here (merchant groups, folds, out-of-fold calibration,
threshold choice) are what ``scripts/eval_sroie.py`` reports with: a fold never holds a
receipt of a merchant that the receipts it is judged by were fitted on.
Re-run this whenever extraction's raw confidences change, then ``make eval``.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.extraction import ClaimExtraction, extract_claim  # noqa: E402
from services.extraction.calibration import CALIBRATED, Calibration, IsotonicMap  # noqa: E402
from services.extraction.candidate_scorer import CandidateScorer  # noqa: E402
from services.extraction.total_and_tax import round5  # noqa: E402
from services.ocr.result import PageText, page_from_json  # noqa: E402

#: The shared receipts and where ``eval_sroie.py`` caches their OCR output.
DATASETS = (
    (SHARED / "datasets/sroie-dev", ROOT / "data/eval/ocr-sroie-dev"),
    (SHARED / "datasets/sroie-train", ROOT / "data/eval/ocr-sroie-train"),
)
# What the reports judge: the calibrated fields and the claim as a whole ("overall").
REPORTED = (*CALIBRATED, "overall")
T = TypeVar("T")
M = TypeVar("M")

PACKAGE_FILE = ROOT / "services/extraction/calibration.json"
# The invoice number of every shared receipt ("" where it prints none), labelled by hand.
INVOICE_LABELS = ROOT / "tests/data/sroie_invoice_numbers.csv"
# The amount paid where a receipt's key gives another total (a sub-total before a discount,
# a total excluding GST), read by hand off the receipt, with the lines that show it. Keys
# giving the unrounded total of a cash-rounded receipt are not listed: ``paid_as_keyed``
# takes the key rounded to 5 sen for them.
AMOUNT_PAID_LABELS = ROOT / "tests/data/sroie_amount_paid.csv"
# A fixed "today": the receipts are from 2015-2019, and a date check must not drift.
TODAY = date(2025, 1, 1)
FOLDS = 5
# Company names this alike (letters and digits only) are one merchant: key typos
# ("RSTORAN WAN SHENG") and spacing ("MR D.I.Y." / "MR. DIY") must not split a merchant
# across folds. Merging two real merchants only makes the estimate stricter.
SAME_MERCHANT = 0.85
_SUFFIX = re.compile(r"\b(SDN\s*BHD|S\s*/\s*B|BHD|BERHAD|SDN|PLC|LTD|CO)\b")
# Scored fields: calibration map name -> scorer field name.
SCORED = {
    "total_amount": "total",
    "service_date": "date",
    "provider_name": "company",
    "provider_address": "address",
}


def load_scorer(path: Path) -> Any:
    """The shared ``sroie_score`` module (its comparison rules define "right")."""
    spec = importlib.util.spec_from_file_location("sroie_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the scorer at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Receipt:
    """One shared receipt: where it is, its key, its cached OCR pages."""

    receipt_id: str  # the file stem, "000".."399"
    image: Path
    key: dict[str, str]
    pages: list[PageText]
    invoice_label: str = ""  # its document number, "" where it prints none
    amount_paid: Decimal | None = None  # where the key's total is not what was paid


@dataclass(frozen=True)
class Outcome:
    """One receipt's extraction with raw confidences, and which fields the scorer accepts."""

    receipt: Receipt
    extraction: ClaimExtraction  # raw confidences, routed at threshold 0
    raw: dict[str, float]  # REPORTED name -> raw confidence ("overall": the weaker)
    has_value: dict[str, bool]  # REPORTED name -> the field (both fields) was read
    # REPORTED name -> scorer says right ("overall": total and date; the invoice number:
    # equal to its label)
    right: dict[str, bool]
    caps: dict[str, float]  # CALIBRATED name -> most extract_claim lets it show (recognition)

    @property
    def blocked(self) -> bool:
        """A reason other than low confidence sends it to review at any threshold; so does
        a missing invoice number, as the OCR step's claim rules do (the email's policy
        number is taken as given: ``services.recognition.apply_claim_rules``)."""
        return bool(self.extraction.reasons) or self.extraction.fields["invoice_number"] is None


def merchant_name(company: str) -> str:
    """A key's company as a merchant: case, punctuation, branch and legal form dropped."""
    text = re.sub(r"\([^)]*\)", " ", company.upper())  # "(M)", "(KUCHAI)", "(TAMAN DAYA)"
    text = _SUFFIX.sub(" ", text.replace(".", ""))
    return re.sub(r"[^A-Z0-9&]", "", text)


def merchant_groups(companies: Sequence[str]) -> list[int]:
    """A group number per company: equal or near-equal merchant names share one."""
    names = sorted({merchant_name(c) for c in companies})
    parent = list(range(len(names)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            if difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= SAME_MERCHANT:
                parent[max(root(i), root(j))] = min(root(i), root(j))
    index = {name: root(i) for i, name in enumerate(names)}
    return [index[merchant_name(c)] for c in companies]


def merchant_folds(groups: Sequence[int], folds: int = FOLDS) -> list[int]:
    """GroupKFold-style: largest merchants first, each to the emptiest fold (ties: lowest)."""
    sizes: dict[int, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    load = [0] * folds
    fold_of: dict[int, int] = {}
    for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
        f = min(range(folds), key=lambda i: (load[i], i))
        fold_of[g] = f
        load[f] += sizes[g]
    return [fold_of[g] for g in groups]


def load_invoice_labels(path: Path = INVOICE_LABELS) -> dict[str, str]:
    """Receipt id -> its document number ("" when it prints none)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {row["receipt"]: row["invoice_number"].strip() for row in csv.DictReader(fh)}


def same_number(got: str | None, expected: str) -> bool:
    """Equal after removing spaces; nothing else is forgiven (O is not 0)."""
    return got is not None and re.sub(r"\s+", "", got) == re.sub(r"\s+", "", expected)


def load_amount_paid(path: Path = AMOUNT_PAID_LABELS) -> dict[str, Decimal]:
    """Receipt id -> the amount paid, for the receipts whose key gives another total."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {row["receipt"]: Decimal(row["amount_paid"]) for row in csv.DictReader(fh)}


def paid_as_keyed(total: Decimal | None, key: Decimal | None, paid: Decimal | None = None) -> bool:
    """``total`` is the amount paid, which a claim is for: ``paid`` where the receipt's key
    gives another total (``AMOUNT_PAID_LABELS``), else the key's total or that total
    rounded to 5 sen (for a receipt paid in cash with rounding the keys give either)."""
    if total is None:
        return False
    if paid is not None:
        return total == paid
    return key is not None and total in {key, round5(key)}


def load_receipts(datasets: Iterable[tuple[Path, Path]] = DATASETS) -> list[Receipt]:
    """Every receipt with a key, its pages from the OCR cache (missing cache: an error)."""
    labels, paid = load_invoice_labels(), load_amount_paid()
    out = []
    for dataset, cache in datasets:
        for image in sorted((dataset / "img").glob("*.jpg")):
            cached = cache / f"{image.stem}.json"
            if not cached.exists():
                raise SystemExit(f"no OCR cache for {image}: run `make eval` first")
            key_path = dataset / "key" / f"{image.stem}.json"
            key = json.loads(key_path.read_text(encoding="utf-8", errors="replace"))
            pages = [page_from_json(p) for p in json.loads(cached.read_text("utf-8"))]
            out.append(
                Receipt(
                    image.stem, image, key, pages, labels.get(image.stem, ""), paid.get(image.stem)
                )
            )
    return out


def outcome(
    receipt: Receipt,
    scorer: Any,
    today: date = TODAY,
    candidate_scorer: CandidateScorer | None = None,
) -> Outcome:
    """Extract with raw confidences and no threshold, and score each field.

    ``candidate_scorer``: the learned choice among candidates (default: the shipped one;
    cross-validation passes one fitted without the receipt's merchant). The recognition
    caps are read by a second extraction that calibrates every field to 1.0: what is left
    below 1.0 is the cap ``extract_claim`` puts on that field.
    """
    ex = extract_claim(
        receipt.pages,
        today=today,
        threshold=0.0,
        calibration=Calibration.identity(),
        candidate_scorer=candidate_scorer,
    )
    capped = extract_claim(
        receipt.pages,
        today=today,
        threshold=0.0,
        calibration=Calibration.constant(1.0),
        candidate_scorer=candidate_scorer,
    ).field_confidence
    caps = {name: capped[name] for name in (*SCORED, "invoice_number")}
    f, key, conf = ex.fields, receipt.key, ex.field_confidence
    total = scorer.norm_total(f["total_amount"])
    when = scorer.parse_iso(f["service_date"])
    ok = {
        "total_amount": total is not None and total == scorer.norm_total(key.get("total")),
        "service_date": when is not None and when == scorer.parse_key_date(key.get("date", "")),
        "provider_name": bool(scorer.norm_text(f["provider_name"]))
        and scorer.norm_text(f["provider_name"]) == scorer.norm_text(key.get("company")),
        "provider_address": bool(scorer.norm_text(f["provider_address"]))
        and scorer.norm_text(f["provider_address"]) == scorer.norm_text(key.get("address")),
    }
    ok["overall"] = ok["total_amount"] and ok["service_date"]
    label = receipt.invoice_label
    ok["invoice_number"] = bool(label) and same_number(f["invoice_number"], label)
    has = {name: f[name] is not None for name in (*SCORED, "invoice_number")}
    has["overall"] = has["total_amount"] and has["service_date"]
    raw = {name: conf[name] for name in (*SCORED, "invoice_number")}
    raw["overall"] = min(raw["total_amount"], raw["service_date"])
    return Outcome(receipt, ex, raw, has, ok, caps)


def fit_map(points: Sequence[tuple[float, bool]]) -> IsotonicMap:
    """Isotonic regression of right (0/1) on raw confidence, as the map's corner points."""
    from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped]

    xs = [x for x, _ in points]
    ys = [float(ok) for _, ok in points]
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(xs, ys)
    return _as_map(zip(model.X_thresholds_, model.y_thresholds_, strict=True))


def fit_sigmoid(points: Sequence[tuple[float, bool]]) -> IsotonicMap:
    """Platt scaling: a logistic curve of right (0/1) on the raw confidence's log-odds,
    drawn as a map of 101 corners (0.00, 0.01, .. 1.00). Two parameters instead of a step
    per run of receipts: a field whose rightness differs by merchant more than by what the
    reading shows generalises to unseen merchants better this way."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    def log_odds(x: float) -> float:
        x = min(max(x, 1e-4), 1 - 1e-4)
        return math.log(x / (1 - x))

    features = np.array([[log_odds(x)] for x, _ in points])
    model = LogisticRegression(C=1e6).fit(features, [ok for _, ok in points])
    grid = [i / 100 for i in range(101)]
    right = model.predict_proba(np.array([[log_odds(x)] for x in grid]))[:, 1]
    return _as_map(zip(grid, right, strict=True))


def _as_map(corners: Iterable[tuple[Any, Any]]) -> IsotonicMap:
    """The fitted curve's corners, rounded as confidences are stored, repeats dropped."""
    kept: list[tuple[float, float]] = []
    for x, y in corners:
        point = (round(float(x), 4), round(float(y), 4))
        if not kept or point != kept[-1]:
            kept.append(point)
    return IsotonicMap(tuple(x for x, _ in kept), tuple(y for _, y in kept))


# Platt scaling where it beat isotonic regression out of fold (merchant-split, the ECE of
# ``make eval``): the address (0.025 vs 0.052), whose rightness is mostly whether a
# merchant's key takes in a branch or mall row, and the invoice number (0.021 vs 0.024;
# its few misread numbers sit among right ones, and isotonic steps fitted without them
# put them over the threshold: recall at >= 0.90 0.900 at precision 0.989, Platt 0.910 at
# 0.994). Isotonic won on the others (company 0.021 vs 0.037, total 0.015 vs 0.020).
FITTERS: dict[str, Callable[[Sequence[tuple[float, bool]]], IsotonicMap]] = {
    "provider_address": fit_sigmoid,
    "invoice_number": fit_sigmoid,
}


def fit_calibration(outcomes: Sequence[Outcome]) -> Calibration:
    """One map per CALIBRATED name, fitted on the receipts where that field was read."""
    maps = {}
    for name in CALIBRATED:
        points = [(o.raw[name], o.right[name]) for o in outcomes if o.has_value[name]]
        maps[name] = FITTERS.get(name, fit_map)(points)
    return Calibration(maps)


@dataclass(frozen=True)
class Calibrated:
    """A receipt's confidences under some calibration, and what routing makes of them."""

    outcome: Outcome
    confidence: dict[str, float]  # REPORTED name -> calibrated (0 where not read)
    fold: int

    @property
    def gate(self) -> float:
        """The highest threshold it is submitted at (if not blocked): every check passes."""
        c = self.confidence
        gate = c["overall"]  # the lesser of total and date
        if self.outcome.has_value["invoice_number"]:
            gate = min(gate, c["invoice_number"])
        return gate

    @property
    def claim_confidence(self) -> float:
        """What ``extract_claim`` reports as the claim's confidence."""
        c = self.confidence
        if self.outcome.has_value["invoice_number"]:
            return min(c["overall"], c["invoice_number"])
        return c["overall"]

    def submitted(self, threshold: float) -> bool:
        return not self.outcome.blocked and self.gate >= threshold


def calibrate(outcome: Outcome, calibration: Calibration, fold: int) -> Calibrated:
    conf = {
        name: min(calibration.apply(name, outcome.raw[name]), outcome.caps[name])
        if outcome.has_value[name]
        else 0.0
        for name in CALIBRATED
    }
    conf["overall"] = min(conf["total_amount"], conf["service_date"])
    return Calibrated(outcome, conf, fold)


def fit_per_fold(
    items: Sequence[T], folds: Sequence[int], fit: Callable[[Sequence[T]], M]
) -> dict[int, M]:
    """Fold -> what ``fit`` makes of the other folds' items (never the fold's own)."""
    return {
        f: fit([item for item, k in zip(items, folds, strict=True) if k != f])
        for f in sorted(set(folds))
    }


def out_of_fold(
    outcomes: Sequence[Outcome],
    folds: Sequence[int],
    fit: Callable[[Sequence[Outcome]], Calibration] = fit_calibration,
) -> list[Calibrated]:
    """Each receipt calibrated by a map fitted on the other folds only."""
    fitted = fit_per_fold(outcomes, folds, fit)
    return [calibrate(o, fitted[f], f) for o, f in zip(outcomes, folds, strict=True)]


@dataclass(frozen=True)
class SubmitPoint:
    """Auto-submission at one threshold."""

    threshold: float
    submitted: int
    right: int
    receipts: int

    @property
    def precision(self) -> float | None:
        return self.right / self.submitted if self.submitted else None

    @property
    def rate(self) -> float:
        return self.submitted / self.receipts if self.receipts else 0.0


def strictly_right(outcome: Outcome) -> bool:
    """The scorer's judgement of a submitted claim: total and date equal the key's."""
    return outcome.right["overall"]


Judge = Callable[[Outcome], bool]


def submit_at(
    calibrated: Sequence[Calibrated], threshold: float, judge: Judge = strictly_right
) -> SubmitPoint:
    sent = [c for c in calibrated if c.submitted(threshold)]
    right = sum(judge(c.outcome) for c in sent)
    return SubmitPoint(threshold, len(sent), right, len(calibrated))


def submit_curve(
    calibrated: Sequence[Calibrated], judge: Judge = strictly_right
) -> list[SubmitPoint]:
    """Submission at every threshold that changes it (each distinct gate value)."""
    gates = sorted({c.gate for c in calibrated if not c.outcome.blocked and c.gate > 0})
    return [submit_at(calibrated, t, judge) for t in gates]


def choose_threshold(
    calibrated: Sequence[Calibrated], precision: float, judge: Judge = strictly_right
) -> SubmitPoint | None:
    """The lowest threshold whose submissions, and those of every higher one, reach
    ``precision`` (one lucky step above a wrong submission does not count)."""
    chosen = None
    for point in reversed(submit_curve(calibrated, judge)):
        if point.precision is None or point.precision < precision:
            break
        chosen = point
    return chosen


def calibration_json(calibration: Calibration, receipts: int, folds: int) -> dict[str, Any]:
    return {
        "about": (
            "Raw extraction confidence -> probability the field is right: isotonic "
            "regression (address and invoice number: Platt scaling) on the shared SROIE "
            "receipts; "
            "written by scripts/calibrate_confidence.py, read by "
            "services/extraction/calibration.py. Points are (x, y) corners, linearly "
            "interpolated and clipped at the ends."
        ),
        "fitted_on": {"receipts": receipts, "merchant_folds_for_evaluation": folds},
        "maps": {
            name: {"x": list(m.xs), "y": list(m.ys)} for name, m in sorted(calibration.maps.items())
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", type=Path, default=SHARED / "tools/sroie_score.py")
    parser.add_argument("--out", type=Path, default=PACKAGE_FILE)
    args = parser.parse_args(argv)
    scorer = load_scorer(args.scorer)
    receipts = load_receipts()
    outcomes = [outcome(r, scorer) for r in receipts]
    calibration = fit_calibration(outcomes)
    text = json.dumps(calibration_json(calibration, len(outcomes), FOLDS), indent=1)
    args.out.write_text(text + "\n", encoding="utf-8")
    for name in CALIBRATED:
        m = calibration.maps[name]
        n = sum(o.has_value[name] for o in outcomes)
        print(
            f"{name:17} fitted on {n:3} receipts, {len(m.xs):2} corners, "
            f"range {m.ys[0]:.3f}..{m.ys[-1]:.3f}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
