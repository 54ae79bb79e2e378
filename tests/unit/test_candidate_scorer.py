"""The learned candidate scorer: the shipped model, how it picks, and what its pick may do."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from services.extraction import extract_claim
from services.extraction.candidate_scorer import (
    CandidateScorer,
    LinearModel,
    load_candidate_scorer,
)
from services.extraction.layout import build_rows
from services.extraction.total_and_tax import choose_total, labelled_amounts
from services.extraction.total_candidates import TOTAL_FEATURES, total_candidates
from tests.unit.test_extraction import TODAY, amount_row, codes, receipt

ROOT = Path(__file__).resolve().parents[2]

# The tender is printed in the totals block but is no total: a candidate for the model only.
TENDER_IN_TOTALS_BLOCK = [
    amount_row("TOTAL", "47.50"),
    amount_row("CASH", "50.00"),
    amount_row("CHANGE", "2.50"),
]


def model_preferring(feature: str, weight: float) -> LinearModel:
    """A hand-set model that only looks at ``feature``."""
    n = len(TOTAL_FEATURES)
    weights = tuple(weight if name == feature else 0.0 for name in TOTAL_FEATURES)
    return LinearModel(TOTAL_FEATURES, (0.0,) * n, (1.0,) * n, weights, 0.0)


def test_shipped_scorer_loads_and_its_use_follows_its_own_cross_validation() -> None:
    text = resources.files("services.extraction").joinpath("candidate_scorer.json").read_text()
    entry = json.loads(text)["fields"]["total_amount"]
    pooled = entry["cross_validation"]["pooled"]
    assert entry["use"] == (pooled["model_accuracy"] > pooled["rules_accuracy"])
    assert tuple(entry["model"]["features"]) == TOTAL_FEATURES
    assert load_candidate_scorer().decides("total_amount") == entry["use"]


def test_probability_is_the_logistic_of_the_standardised_features() -> None:
    model = LinearModel(("a", "b"), (1.0, 0.0), (2.0, 1.0), (0.5, -1.0), 0.25)
    z = 0.25 + 0.5 * (3.0 - 1.0) / 2.0 - 1.0 * 0.5
    assert model.probability({"a": 3.0, "b": 0.5}) == pytest.approx(1 / (1 + math.exp(-z)))
    with pytest.raises(ValueError):
        LinearModel(("a",), (0.0,), (0.0,), (1.0,), 0.0)
    with pytest.raises(ValueError):
        LinearModel(("a", "b"), (0.0,), (1.0,), (1.0,), 0.0)


def test_pick_takes_the_best_score_and_leaves_undecided_fields_to_the_rules() -> None:
    scorer = CandidateScorer({"total_amount": model_preferring("rule_evidence", 1.0)})
    candidates = [{n: 0.0 for n in TOTAL_FEATURES} for _ in range(3)]
    candidates[1]["rule_evidence"] = 2.0
    assert scorer.pick("total_amount", candidates) == 1
    assert scorer.pick("total_amount", []) is None
    assert scorer.pick("service_date", candidates) is None
    assert CandidateScorer.rules_only().pick("total_amount", candidates) is None


def test_from_json_keeps_only_the_fields_the_model_won() -> None:
    model = model_preferring("rule_best", 1.0).to_json()
    lost = {"fields": {"total_amount": {"use": False, "model": model}}}
    won = {"fields": {"total_amount": {"use": True, "model": model}}}
    assert not CandidateScorer.from_json(lost).decides("total_amount")
    assert CandidateScorer.from_json(won).decides("total_amount")


def test_candidates_include_the_totals_block_amounts_the_rules_never_choose() -> None:
    items = labelled_amounts(build_rows([receipt(*TENDER_IN_TOTALS_BLOCK)]))
    by_value = {c.value: c.features for c in total_candidates(items)}
    assert by_value[Decimal("47.50")]["rule_best"] == 1.0
    assert by_value[Decimal("47.50")]["tender_agrees"] == 1.0
    assert by_value[Decimal("50.00")]["rules_candidate"] == 0.0
    assert by_value[Decimal("50.00")]["tender_disagrees"] == 1.0
    assert set(by_value[Decimal("50.00")]) == set(TOTAL_FEATURES)
    assert choose_total(items).value == Decimal("47.50")
    assert choose_total(items, Decimal("50.00")).value == Decimal("50.00")
    assert choose_total(items, Decimal("999.00")).value == Decimal("47.50")  # not a candidate


def test_a_learned_pick_the_rules_cannot_vouch_for_goes_to_review() -> None:
    pages = [receipt(*TENDER_IN_TOTALS_BLOCK)]
    learned = CandidateScorer({"total_amount": model_preferring("rules_candidate", -5.0)})

    picked = extract_claim(pages, today=TODAY, candidate_scorer=learned)
    rules = extract_claim(pages, today=TODAY, candidate_scorer=CandidateScorer.rules_only())

    assert picked.fields["total_amount"] == "50.00"
    assert rules.fields["total_amount"] == "47.50"
    assert rules.route == "submit", rules.reasons
    assert picked.route == "review"
    assert {"total_mismatch", "total_unconfirmed", "low_confidence_total"} <= codes(picked)
    assert "50.00" in picked.field_evidence["total_amount"].text


def test_training_is_deterministic_and_learns_the_feature_that_marks_the_right_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import train_candidate_scorer as tcs

    def example(n: int) -> tcs.Example:
        features = [{name: float((n + i) % 3) for name in TOTAL_FEATURES} for i in range(3)]
        for i, f in enumerate(features):
            f["tender_agrees"] = float(i == n % 3)
        values = [Decimal(i + 1) for i in range(3)]
        right = [i == n % 3 for i in range(3)]
        return tcs.Example(str(n), values, features, right, values[0], n % 3 == 0)

    data = [example(n) for n in range(30)]
    first, second = tcs.fit(data, TOTAL_FEATURES), tcs.fit(data, TOTAL_FEATURES)
    assert first == second
    figures, _ = tcs.cross_validate(data, [n % 5 for n in range(30)], TOTAL_FEATURES)
    assert figures["pooled"]["model_accuracy"] == 1.0
    assert figures["pooled"]["rules_accuracy"] == pytest.approx(10 / 30, abs=1e-4)
    assert (figures["fixed"], figures["broke"]) == (20, 0)
    assert tcs.model_wins(figures)


def test_a_model_that_fixes_one_receipt_more_does_not_replace_the_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import train_candidate_scorer as tcs

    # Right on one receipt more than the rules: noise, not a better rule (sign test).
    one_better = {"pooled": {"rules_accuracy": 0.843, "model_accuracy": 0.845}}
    assert not tcs.model_wins({**one_better, "sign_test_p": tcs.sign_test(1, 0)})
    assert tcs.sign_test(5, 0) < tcs.SIGN_TEST_P
    assert tcs.sign_test(6, 3) > tcs.SIGN_TEST_P
