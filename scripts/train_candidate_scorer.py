#!/usr/bin/env python3
"""Fit ``services/extraction/candidate_scorer.json``: learned choice among the rules' candidates.

For the total (``services.extraction.total_candidates``), every shared receipt (sroie-dev
and sroie-train, OCR from the caches ``make eval`` writes) gives the rules' candidate
values with their features, a candidate labelled right when it is the amount paid
(``calibrate_confidence.paid_as_keyed``): the key's total or that total rounded to 5 sen
(for a receipt paid in cash with rounding the SROIE keys give either), or the amount paid
labelled where the key gives another total (a sub-total before a discount). The claim is
for the amount paid (the rules decide it from the payment; ``make eval`` judges alike in
its second table), so the model is not taught to prefer what the keys happen to give.
On the merchant-split folds of ``make eval`` a logistic regression is fitted on the other
folds' candidates and picks one per held-out receipt; the rules pick theirs. The model is
marked ``use`` only where its pooled cross-validated accuracy beats the rules' (so a
field where the rules win keeps the rules, and the file says by how much). Finally it is
refitted on all receipts and written with those figures. Deterministic: same caches and
code, same file.

    python scripts/train_candidate_scorer.py               # writes the package's file
    python scripts/train_candidate_scorer.py --out /tmp/s.json
    python scripts/train_candidate_scorer.py --check      # report; fail if the file is stale

Afterwards refit the confidence maps (``scripts/calibrate_confidence.py``), since the
chosen values feed them, then ``make eval``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import calibrate_confidence as cc  # noqa: E402  (scripts/ is on sys.path as the script's folder)

from services.extraction.candidate_scorer import CandidateScorer, LinearModel  # noqa: E402
from services.extraction.layout import build_rows  # noqa: E402
from services.extraction.total_and_tax import choose_total, labelled_amounts  # noqa: E402
from services.extraction.total_candidates import TOTAL_FEATURES, total_candidates  # noqa: E402

PACKAGE_FILE = ROOT / "services/extraction/candidate_scorer.json"
FIELD = "total_amount"
# Inverse regularisation strength; fixed (not tuned on the folds it is judged by).
C = 1.0


@dataclass(frozen=True)
class Example:
    """One receipt's candidates, which of them are right (``is_right``), the rules' choice."""

    receipt_id: str
    values: list[Decimal]
    features: list[dict[str, float]]
    right: list[bool]
    rules_value: Decimal | None  # what the rules choose (their fallback when no candidate)
    key: Decimal | None
    paid: Decimal | None  # labelled where the key is not the amount paid

    def is_right(self, value: Decimal | None) -> bool:
        return cc.paid_as_keyed(value, self.key, self.paid)


def examples(receipts: Sequence[cc.Receipt], scorer: Any) -> list[Example]:
    out = []
    for r in receipts:
        items = labelled_amounts(build_rows(r.pages))
        candidates = total_candidates(items)
        key = scorer.norm_total(r.key.get("total"))
        out.append(
            Example(
                r.receipt_id,
                [c.value for c in candidates],
                [c.features for c in candidates],
                [cc.paid_as_keyed(c.value, key, r.amount_paid) for c in candidates],
                choose_total(items).value,
                key,
                r.amount_paid,
            )
        )
    return out


def fit(train: Sequence[Example], c: float = C) -> LinearModel:
    """Logistic regression on the standardised features of every training candidate."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    rows = [[f[name] for name in TOTAL_FEATURES] for e in train for f in e.features]
    labels = [ok for e in train for ok in e.right]
    x = np.array(rows, dtype=float)
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit((x - means) / scales, np.array(labels, dtype=int))
    return LinearModel(
        TOTAL_FEATURES,
        tuple(float(v) for v in means),
        tuple(float(v) for v in scales),
        tuple(float(v) for v in model.coef_[0]),
        float(model.intercept_[0]),
    )


def model_value(model: LinearModel, example: Example) -> Decimal | None:
    best = CandidateScorer({FIELD: model}).pick(FIELD, example.features)
    return example.rules_value if best is None else example.values[best]


def fold_models(examples: Sequence[Example], folds: Sequence[int]) -> dict[int, LinearModel]:
    """A model per fold, fitted on the other folds' receipts only."""
    return cc.fit_per_fold(examples, folds, fit)


@dataclass
class Tally:
    receipts: int = 0
    rules_right: int = 0
    model_right: int = 0

    def add(self, rules_ok: bool, model_ok: bool) -> None:
        self.receipts += 1
        self.rules_right += rules_ok
        self.model_right += model_ok

    def as_json(self) -> dict[str, Any]:
        n = self.receipts or 1
        return {
            "receipts": self.receipts,
            "rules_accuracy": round(self.rules_right / n, 4),
            "model_accuracy": round(self.model_right / n, 4),
        }


def cross_validate(
    examples: Sequence[Example], folds: Sequence[int]
) -> tuple[dict[str, Any], list[str]]:
    """Pooled and per-fold accuracy of rules and model, and the receipts they disagree on."""
    models = fold_models(examples, folds)
    pooled, per_fold = Tally(), {f: Tally() for f in models}
    changed = []
    for e, f in zip(examples, folds, strict=True):
        chosen = model_value(models[f], e)
        rules_ok, model_ok = e.is_right(e.rules_value), e.is_right(chosen)
        pooled.add(rules_ok, model_ok)
        per_fold[f].add(rules_ok, model_ok)
        if chosen != e.rules_value:
            verdict = "fixed" if model_ok else ("broke" if rules_ok else "both wrong")
            changed.append(f"{e.receipt_id}: rules {e.rules_value}, model {chosen} ({verdict})")
    figures = {
        "pooled": pooled.as_json(),
        "folds": [per_fold[f].as_json() for f in sorted(per_fold)],
        "receipts_with_candidates": sum(bool(e.values) for e in examples),
        "key_among_candidates": sum(any(e.right) for e in examples),
    }
    return figures, changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", type=Path, default=cc.SHARED / "tools/sroie_score.py")
    parser.add_argument("--out", type=Path, default=PACKAGE_FILE)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail if --out differs from the fit"
    )
    args = parser.parse_args(argv)
    scorer = cc.load_scorer(args.scorer)
    receipts = cc.load_receipts()
    data = examples(receipts, scorer)
    folds = cc.merchant_folds(cc.merchant_groups([r.key.get("company", "") for r in receipts]))
    figures, changed = cross_validate(data, folds)
    pooled = figures["pooled"]
    use = pooled["model_accuracy"] > pooled["rules_accuracy"]
    print(
        f"{FIELD}: {len(data)} receipts, {figures['receipts_with_candidates']} with candidates, "
        f"key among them on {figures['key_among_candidates']}"
    )
    print("fold  receipts  rules  model")
    for i, f in enumerate(figures["folds"]):
        print(f"{i:4}  {f['receipts']:8}  {f['rules_accuracy']:.3f}  {f['model_accuracy']:.3f}")
    print(
        f"pooled {pooled['receipts']:6}  {pooled['rules_accuracy']:.3f}  "
        f"{pooled['model_accuracy']:.3f}  -> {'model' if use else 'rules'} choose the total "
        f"(logistic regression, C={C})"
    )
    for line in changed:
        print("  " + line)
    model = fit(data)
    document = {
        "about": (
            "Logistic models scoring the rules' candidates of a field; `use` marks the "
            "fields where the model beat the rules on merchant-split cross-validation "
            "over the shared SROIE receipts. Written by scripts/train_candidate_scorer.py, "
            "read by services/extraction/candidate_scorer.py."
        ),
        "fields": {
            FIELD: {
                "use": use,
                "cross_validation": {**figures, "folds_by": "merchant", "changed": changed},
                "model": model.to_json(),
            }
        },
    }
    text = json.dumps(document, indent=1) + "\n"
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is not what the current code and data fit: run this script")
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
