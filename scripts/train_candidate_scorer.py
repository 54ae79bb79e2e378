#!/usr/bin/env python3
"""Fit ``services/extraction/candidate_scorer.json``: learned choice among the rules' candidates.

Every shared receipt (sroie-dev and sroie-train, OCR from the caches ``make eval`` writes)
gives, per field, the rules' candidate values with their features and which are right:

- the total (``services.extraction.total_candidates``): a candidate is right when it is
  the amount paid (``calibrate_confidence.paid_as_keyed``): the key's total or that total
  rounded to 5 sen (for a receipt paid in cash with rounding the SROIE keys give either),
  or the amount paid labelled where the key gives another total (a sub-total before a
  discount). The claim is for the amount paid (the rules decide it from the payment;
  ``make eval`` judges alike), so the model is not taught what the keys happen to give.
- the provider's name: every run of one to three of the first header rows (the rows the
  name rules search), described by label words, layout and recognition; right when it is
  the key's company as the shared scorer compares names.

On the merchant-split folds of ``make eval`` a logistic regression is fitted on the other
folds' candidates and picks one per held-out receipt; the rules pick theirs. The model is
marked ``use`` only where it is right on more receipts than the rules and fixes
significantly more than it breaks (one-sided sign test on the receipts where they
differ, p < 0.05): one receipt's difference is noise, not a better rule. A field where the
rules win keeps the rules, and the file says by how much. The provider's name is
evaluated only (``provider.py`` has no learned path): should its model ever win, this
script stops and says so. Finally each model is refitted on all receipts and written with
its figures. Deterministic: same caches and code, same file.

    python scripts/train_candidate_scorer.py               # writes the package's file
    python scripts/train_candidate_scorer.py --out /tmp/s.json
    python scripts/train_candidate_scorer.py --check      # report; fail if the file is stale

Afterwards refit the confidence maps (``scripts/calibrate_confidence.py``), since the
chosen values feed them, then ``make eval``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import calibrate_confidence as cc  # noqa: E402  (scripts/ is on sys.path as the script's folder)

from services.extraction import provider  # noqa: E402
from services.extraction.address_words import correct_company  # noqa: E402
from services.extraction.candidate_scorer import CandidateScorer, LinearModel  # noqa: E402
from services.extraction.layout import Row, build_rows  # noqa: E402
from services.extraction.total_and_tax import choose_total, labelled_amounts  # noqa: E402
from services.extraction.total_candidates import TOTAL_FEATURES, total_candidates  # noqa: E402

PACKAGE_FILE = ROOT / "services/extraction/candidate_scorer.json"
# Inverse regularisation strength; fixed (not tuned on the folds it is judged by).
C = 1.0
# The model replaces the rules only if it fixes this significantly more than it breaks.
SIGN_TEST_P = 0.05


@dataclass(frozen=True)
class Example:
    """One receipt's candidates for a field, which are right, and the rules' choice."""

    receipt_id: str
    values: list[Any]
    features: list[dict[str, float]]
    right: list[bool]
    rules_value: Any  # what the rules choose (their fallback when no candidate)
    rules_right: bool


@dataclass(frozen=True)
class Field:
    """A field the learned choice is tried on."""

    name: str
    features: tuple[str, ...]
    examples: Callable[[Sequence[cc.Receipt], Any], list[Example]]
    wired: bool  # extract_claim takes the model's choice when the file says ``use``


def total_examples(receipts: Sequence[cc.Receipt], scorer: Any) -> list[Example]:
    out = []
    for r in receipts:
        items = labelled_amounts(build_rows(r.pages))
        candidates = total_candidates(items)
        key = scorer.norm_total(r.key.get("total"))
        rules_value = choose_total(items).value
        out.append(
            Example(
                r.receipt_id,
                [c.value for c in candidates],
                [c.features for c in candidates],
                [cc.paid_as_keyed(c.value, key, r.amount_paid) for c in candidates],
                rules_value,
                cc.paid_as_keyed(rules_value, key, r.amount_paid),
            )
        )
    return out


NAME_FEATURES = (
    "rules_choice",
    "start",
    "rows",
    "legal",
    "legal_last_row",
    "business",
    "address_like",
    "not_name",
    "name_like",
    "digits",
    "letter_share",
    "mean_conf",
    "min_conf",
    "height",
    "first_name_like",
    "lower_case",
    "reg_no_after",
    "postcode_after",
    "length",
    "bracketed",
)
# The header rows the name rules search, and the longest run of them a name wraps over.
_NAME_ROWS = provider._NAME_SEARCH_ROWS
_NAME_SPAN = 3


def name_candidates(rows: Sequence[Row]) -> tuple[list[str], list[dict[str, float]], str | None]:
    """Every run of 1-3 of the first header rows as a name, with its features, and the
    name the rules choose."""
    name, _ = provider.extract_provider(rows)
    header = provider.header_rows(rows)
    texts = [r.text.strip().upper() for r in header]
    median_height = statistics.median([r.height for r in header] or [1.0]) or 1.0
    first_name_like = next(
        (i for i, t in enumerate(texts[:_NAME_ROWS]) if provider._name_like(provider._clean(t))),
        -1,
    )
    values: list[str] = []
    features: list[dict[str, float]] = []
    for i in range(min(_NAME_ROWS, len(header))):
        for j in range(i + 1, min(i + _NAME_SPAN, len(header)) + 1):
            span, joined = texts[i:j], " ".join(texts[i:j])
            value = correct_company(provider._clean(" ".join(provider._clean(t) for t in span)))
            if not value or value in values:
                continue
            core = joined.replace(" ", "")
            after = texts[j : j + 3]
            confs = [c for r in header[i:j] for c in r.confs] or [0.0]
            values.append(value)
            features.append(
                {
                    "rules_choice": float(value == name.value),
                    "start": i / _NAME_ROWS,
                    "rows": float(j - i),
                    "legal": float(bool(provider._LEGAL.search(joined))),
                    "legal_last_row": float(bool(provider._LEGAL.search(span[-1]))),
                    "business": float(bool(provider._BUSINESS.search(joined))),
                    "address_like": float(any(provider._address_like(t) for t in span)),
                    "not_name": float(any(provider._NOT_NAME.search(t) for t in span)),
                    "name_like": float(all(provider._name_like(provider._clean(t)) for t in span)),
                    "digits": float(bool(re.search(r"\d", provider._clean(joined)))),
                    "letter_share": sum(ch.isalpha() for ch in core) / max(len(core), 1),
                    "mean_conf": sum(confs) / len(confs),
                    "min_conf": min(confs),
                    "height": statistics.mean(r.height for r in header[i:j]) / median_height,
                    "first_name_like": float(i == first_name_like),
                    "lower_case": float(any(r.text.strip().islower() for r in header[i:j])),
                    "reg_no_after": float(bool(after) and bool(provider._REG_NO.search(after[0]))),
                    "postcode_after": float(any(provider._has_postcode(t) for t in after)),
                    "length": len(joined) / 40,
                    "bracketed": float(joined.startswith("(")),
                }
            )
    return values, features, name.value


def name_examples(receipts: Sequence[cc.Receipt], scorer: Any) -> list[Example]:
    out = []
    for r in receipts:
        values, features, rules_value = name_candidates(build_rows(r.pages))
        key = scorer.norm_text(r.key.get("company"))

        def same(value: str | None, key: str = key) -> bool:
            return bool(value) and scorer.norm_text(value) == key

        out.append(
            Example(
                r.receipt_id,
                values,
                features,
                [same(v) for v in values],
                rules_value,
                same(rules_value),
            )
        )
    return out


FIELDS = (
    Field("total_amount", TOTAL_FEATURES, total_examples, wired=True),
    Field("provider_name", NAME_FEATURES, name_examples, wired=False),
)


def fit(train: Sequence[Example], features: Sequence[str], c: float = C) -> LinearModel:
    """Logistic regression on the standardised features of every training candidate."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    rows = [[f[name] for name in features] for e in train for f in e.features]
    labels = [ok for e in train for ok in e.right]
    x = np.array(rows, dtype=float)
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit((x - means) / scales, np.array(labels, dtype=int))
    return LinearModel(
        tuple(features),
        tuple(float(v) for v in means),
        tuple(float(v) for v in scales),
        tuple(float(v) for v in model.coef_[0]),
        float(model.intercept_[0]),
    )


def fold_models(
    name: str, receipts: Sequence[cc.Receipt], scorer: Any, folds: Sequence[int]
) -> dict[int, LinearModel]:
    """Field ``name``'s model per fold, each fitted on the other folds' receipts only."""
    field = next(f for f in FIELDS if f.name == name)
    data = field.examples(receipts, scorer)
    return cc.fit_per_fold(data, folds, lambda train: fit(train, field.features))


def model_choice(model: LinearModel, example: Example) -> tuple[Any, bool]:
    """The model's value for ``example`` and whether it is right (the rules' own where
    there is no candidate)."""
    best = CandidateScorer({"field": model}).pick("field", example.features)
    if best is None:
        return example.rules_value, example.rules_right
    return example.values[best], example.right[best]


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


def sign_test(fixed: int, broke: int) -> float:
    """One-sided p of ``fixed`` or more of ``fixed + broke`` changes going the model's
    way by chance (each change a coin toss)."""
    n = fixed + broke
    return sum(math.comb(n, k) for k in range(fixed, n + 1)) / 2**n if n else 1.0


def cross_validate(
    examples: Sequence[Example], folds: Sequence[int], features: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """Pooled and per-fold accuracy of rules and model, and the receipts they disagree on."""
    models = cc.fit_per_fold(examples, folds, lambda train: fit(train, features))
    pooled, per_fold = Tally(), {f: Tally() for f in models}
    changed = []
    fixed = broke = 0
    for e, f in zip(examples, folds, strict=True):
        chosen, model_ok = model_choice(models[f], e)
        pooled.add(e.rules_right, model_ok)
        per_fold[f].add(e.rules_right, model_ok)
        if chosen != e.rules_value:
            verdict = "fixed" if model_ok else ("broke" if e.rules_right else "both wrong")
            fixed += model_ok and not e.rules_right
            broke += e.rules_right and not model_ok
            changed.append(f"{e.receipt_id}: rules {e.rules_value}, model {chosen} ({verdict})")
    figures = {
        "pooled": pooled.as_json(),
        "folds": [per_fold[f].as_json() for f in sorted(per_fold)],
        "receipts_with_candidates": sum(bool(e.values) for e in examples),
        "key_among_candidates": sum(any(e.right) for e in examples),
        "fixed": fixed,
        "broke": broke,
        "sign_test_p": round(sign_test(fixed, broke), 4),
    }
    return figures, changed


def model_wins(figures: dict[str, Any]) -> bool:
    pooled = figures["pooled"]
    return (
        pooled["model_accuracy"] > pooled["rules_accuracy"] and figures["sign_test_p"] < SIGN_TEST_P
    )


def train_field(
    field: Field, receipts: Sequence[cc.Receipt], scorer: Any, folds: Sequence[int]
) -> dict[str, Any]:
    """Cross-validate, print and refit one field; its entry of the file."""
    data = field.examples(receipts, scorer)
    figures, changed = cross_validate(data, folds, field.features)
    pooled, use = figures["pooled"], model_wins(figures)
    print(
        f"{field.name}: {len(data)} receipts, {figures['receipts_with_candidates']} with "
        f"candidates, key among them on {figures['key_among_candidates']}"
    )
    print("fold  receipts  rules  model")
    for i, f in enumerate(figures["folds"]):
        print(f"{i:4}  {f['receipts']:8}  {f['rules_accuracy']:.3f}  {f['model_accuracy']:.3f}")
    print(
        f"pooled {pooled['receipts']:6}  {pooled['rules_accuracy']:.3f}  "
        f"{pooled['model_accuracy']:.3f}  fixed {figures['fixed']}, broke {figures['broke']} "
        f"(sign test p {figures['sign_test_p']})  -> {'model' if use else 'rules'} choose "
        f"(logistic regression, C={C})"
    )
    for line in changed:
        print("  " + line)
    if use and not field.wired:
        raise SystemExit(f"the learned {field.name} now beats the rules: give it a learned path")
    return {
        "use": use,
        "cross_validation": {**figures, "folds_by": "merchant", "changed": changed},
        "model": fit(data, field.features).to_json(),
    }


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
    folds = cc.merchant_folds(cc.merchant_groups([r.key.get("company", "") for r in receipts]))
    document = {
        "about": (
            "Logistic models scoring the rules' candidates of a field; `use` marks the "
            "fields where the model beat the rules on merchant-split cross-validation "
            "over the shared SROIE receipts (and fixed significantly more than it broke). "
            "Written by scripts/train_candidate_scorer.py, read by "
            "services/extraction/candidate_scorer.py."
        ),
        "fields": {f.name: train_field(f, receipts, scorer, folds) for f in FIELDS},
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
