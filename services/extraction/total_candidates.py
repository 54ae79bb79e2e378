"""The rules' candidate totals, each described by the features the learned scorer reads.

The rules (``total_and_tax.weigh_totals``) propose every value a total label, the payment
or the receipt's sums point at, and weigh them with hand-set evidence. The learned scorer
(``candidate_scorer``) re-ranks those same candidates from features of label, layout,
arithmetic and recognition, so it can only choose among values the rules can explain
and the reasons and checks of ``extract_claim`` still apply to its choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.extraction.labels import Kind
from services.extraction.total_and_tax import Labelled, round5, weigh_totals
from services.extraction.total_checks import (
    Verdict,
    item_sum,
    labelled_total,
    repeated_total,
    subtotal_tax_rounding,
    tender_minus_change,
)

# Feature names, in the order the model file lists its weights.
TOTAL_FEATURES = (
    "rule_evidence",
    "rule_share",
    "rule_best",
    "rules_candidate",
    "grand_total_label",
    "total_label",
    "weak_total_label",
    "label_from_row_above",
    "printed_rows",
    "last_total_row",
    "lowest_rel_y",
    "largest_candidate",
    "five_sen_multiple",
    "tender_agrees",
    "tender_disagrees",
    "sum_agrees",
    "repeated",
    "item_sum_agrees",
    "labelled",
    "plus_rounding",
    "undecided_rounding",
    "recognition",
    "comma_decimal",
    "candidates",
)
_TOTAL_LABELS = frozenset({Kind.GRAND_TOTAL, Kind.TOTAL, Kind.WEAK_TOTAL})


@dataclass(frozen=True)
class TotalCandidate:
    value: Decimal
    features: dict[str, float]


def total_candidates(items: Sequence[Labelled]) -> list[TotalCandidate]:
    """Every candidate total of the rules, in a fixed order (by value), with features."""
    weights = weigh_totals(items)
    if weights is None:
        return []
    evidence = weights.evidence
    positive = sum(max(e, 0.0) for e in evidence.values()) or 1.0
    best = weights.rules_best
    largest = max(evidence)
    total_rows = [it.row.index for it in items if it.kind in _TOTAL_LABELS]
    last_total_row = max(total_rows, default=-1)
    out = []
    for value in sorted({*evidence, *weights.extras}):
        printed = [it for it in items if it.value == value]
        kinds = {it.kind for it in printed}
        labelled = [it for it in printed if it.kind in _TOTAL_LABELS]

        def agrees(check: object) -> float:
            return 1.0 if check is Verdict.AGREES else 0.0

        tender = tender_minus_change(value, items)

        features = {
            "rule_evidence": evidence.get(value, 0.0),
            "rule_share": max(evidence.get(value, 0.0), 0.0) / positive,
            "rules_candidate": float(value in evidence),
            "rule_best": float(value == best),
            "grand_total_label": float(Kind.GRAND_TOTAL in kinds),
            "total_label": float(Kind.TOTAL in kinds),
            "weak_total_label": float(Kind.WEAK_TOTAL in kinds),
            "label_from_row_above": float(any(it.from_row_above for it in labelled)),
            "printed_rows": float(min(len({it.row.index for it in printed}), 3)),
            "last_total_row": float(any(it.row.index == last_total_row for it in labelled)),
            "lowest_rel_y": max((it.row.rel_y for it in printed), default=0.0),
            "largest_candidate": float(value == largest),
            "five_sen_multiple": float(value == round5(value)),
            "tender_agrees": agrees(tender),
            "tender_disagrees": float(tender is Verdict.DISAGREES),
            "sum_agrees": agrees(subtotal_tax_rounding(value, items)),
            "repeated": agrees(repeated_total(value, items)),
            "item_sum_agrees": agrees(item_sum(value, items)),
            "labelled": float(labelled_total(value, items)),
            "plus_rounding": float("total_plus_rounding" in weights.checks[value]),
            "undecided_rounding": float(value in weights.undecided),
            "recognition": max((it.ocr for it in printed), default=0.0),
            "comma_decimal": float(bool(printed) and all(it.comma_decimal for it in printed)),
            "candidates": float(min(len(evidence), 6)),
        }
        out.append(TotalCandidate(value, features))
    return out
