"""Calibrated confidence: the shipped map, how extract_claim applies it, reliability and ECE."""

from __future__ import annotations

import itertools
import json
from importlib import resources

import numpy as np
import pytest

from services.extraction import extract_claim
from services.extraction.calibration import (
    CALIBRATED,
    Calibration,
    IsotonicMap,
    expected_calibration_error,
    load_calibration,
    reliability_table,
)
from services.extraction.confidence import LOOKALIKE_CAP
from services.extraction.invoice import GUESSED
from tests.unit.test_extraction import (
    CLEAN_TAIL,
    HEADER,
    TODAY,
    Row,
    Seg,
    amount_row,
    codes,
    receipt,
)

GRID = [i / 1000 for i in range(1001)]


def test_shipped_calibration_loads_from_the_package_and_covers_every_field() -> None:
    text = resources.files("services.extraction").joinpath("calibration.json").read_text("utf-8")
    assert set(json.loads(text)["maps"]) == set(CALIBRATED)
    assert set(load_calibration().maps) == set(CALIBRATED)


@pytest.mark.parametrize("name", CALIBRATED)
def test_shipped_maps_are_monotone_probabilities(name: str) -> None:
    mapping = load_calibration().maps[name]
    values = [mapping(x) for x in GRID]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_map_interpolates_as_the_fitted_isotonic_regression_predicts() -> None:
    xs, ys = (0.2, 0.5, 0.5, 0.9), (0.1, 0.3, 0.6, 0.95)
    mapping = IsotonicMap(xs, ys)
    probe = [0.0, 0.2, 0.35, 0.49, 0.7, 0.9, 1.0]
    # np.interp is what IsotonicRegression.predict uses (out_of_bounds="clip").
    assert [mapping(x) for x in probe] == pytest.approx(list(np.interp(probe, xs, ys)))


@pytest.mark.parametrize(
    ("xs", "ys"),
    [((0.1, 0.5), (0.9, 0.2)), ((0.5, 0.1), (0.2, 0.9)), ((0.1, 0.5), (0.2, 1.2)), ((), ())],
)
def test_map_refuses_points_that_are_not_a_monotone_probability(
    xs: tuple[float, ...], ys: tuple[float, ...]
) -> None:
    with pytest.raises(ValueError):
        IsotonicMap(xs, ys)


def test_extract_claim_applies_the_shipped_calibration_by_default() -> None:
    pages = [receipt(*CLEAN_TAIL)]
    default = extract_claim(pages, today=TODAY)
    shipped = extract_claim(pages, today=TODAY, calibration=load_calibration())
    raw = extract_claim(pages, today=TODAY, calibration=Calibration.identity())
    assert default.field_confidence == shipped.field_confidence
    assert default.confidence == shipped.confidence
    calibration = load_calibration()
    for name in ("provider_name", "provider_address"):
        expected = calibration.apply(name, raw.field_confidence[name])
        assert default.field_confidence[name] == expected


def test_calibrated_confidence_decides_the_route() -> None:
    """The same clean receipt submits or not by what its calibration says, not the raw."""
    pages = [receipt(*CLEAN_TAIL)]
    sure = Calibration.constant(0.99)
    submitted = extract_claim(pages, today=TODAY, calibration=sure)
    assert submitted.route == "submit", submitted.reasons
    assert submitted.field_confidence["total_amount"] == 0.99
    assert submitted.confidence == 0.99
    # The claim is as sure as the less sure of its total and date.
    for name in ("total_amount", "service_date"):
        unsure = Calibration({**sure.maps, name: IsotonicMap((0.0,), (0.5,))})
        reviewed = extract_claim(pages, today=TODAY, calibration=unsure)
        assert reviewed.confidence == 0.5
        assert reviewed.route == "review"
    low_total = Calibration({**sure.maps, "total_amount": IsotonicMap((0.0,), (0.5,))})
    flagged = extract_claim(pages, today=TODAY, calibration=low_total)
    assert "low_confidence_total" in codes(flagged)


def test_calibration_never_lifts_a_weakly_read_uncorroborated_total() -> None:
    """Maps learnt on scans may not vouch for a digit the recognizer doubted."""
    weak = extract_claim(
        [receipt(amount_row("TOTAL", "50.00", weak="50", weak_conf=0.4))],
        today=TODAY,
        calibration=Calibration.constant(1.0),
    )
    raw = extract_claim(
        [receipt(amount_row("TOTAL", "50.00", weak="50", weak_conf=0.4))],
        today=TODAY,
        calibration=Calibration.identity(),
    )
    assert weak.field_confidence["total_amount"] == raw.field_confidence["total_amount"] < 0.5
    assert weak.route == "review"


def test_missing_field_has_no_confidence_whatever_the_map_says() -> None:
    pages = [receipt(header=[])]
    result = extract_claim(pages, today=TODAY, calibration=Calibration.constant(0.9))
    assert result.fields["service_date"] is None
    assert result.field_confidence["service_date"] == 0.0
    assert result.confidence == 0.0


def test_reliability_table_and_ece_on_a_known_example() -> None:
    confidences = [0.05, 0.15, 0.95, 0.95, 0.95, 0.95, 1.0]
    correct = [False, False, True, True, True, False, True]
    table = reliability_table(confidences, correct, bins=10)
    assert [(b.low, b.count) for b in table] == [(0.0, 1), (0.1, 1), (0.9, 5)]
    top = table[-1]
    assert top.mean_confidence == pytest.approx(0.96)
    assert top.accuracy == pytest.approx(0.8)
    # (1 * 0.05 + 1 * 0.15 + 5 * 0.16) / 7
    assert expected_calibration_error(table) == pytest.approx(1.0 / 7)


def test_perfectly_calibrated_predictions_have_zero_ece() -> None:
    confidences = [0.25] * 4 + [0.75] * 4
    correct = [True, False, False, False, True, True, True, False]
    assert expected_calibration_error(reliability_table(confidences, correct)) == 0.0
    assert expected_calibration_error([]) == 0.0


def _with_invoice_row(row: str) -> list[Row]:
    return [r if r != "Invoice No: INV-20180012" else row for r in HEADER]


@pytest.mark.parametrize(
    ("row", "most"),
    [
        ("Invoice No: INV-20180012", 1.0),  # a labelled number: the map decides
        ("REF NO: 500600700", GUESSED),  # a reference number stays a guess for a person
    ],
)
def test_invoice_number_is_calibrated_under_its_cap(row: str, most: float) -> None:
    pages = [receipt(*CLEAN_TAIL, header=_with_invoice_row(row))]
    result = extract_claim(pages, today=TODAY, calibration=Calibration.constant(1.0))
    assert result.field_confidence["invoice_number"] == most
    assert (result.route == "submit") is (most >= 0.9), result.reasons


def test_an_unsurely_read_look_alike_in_the_invoice_number_stays_under_the_threshold() -> None:
    header = [r for r in HEADER if not (isinstance(r, str) and r.startswith("Invoice No"))]
    number = Seg(20, "Invoice No: 1O0234", weak="O", weak_conf=0.6)
    pages = [receipt(*CLEAN_TAIL, header=[*header, [number]])]
    result = extract_claim(pages, today=TODAY, calibration=Calibration.constant(1.0))
    assert result.fields["invoice_number"] == "100234"
    assert result.field_confidence["invoice_number"] == LOOKALIKE_CAP
    assert "low_confidence_invoice_number" in codes(result)


def test_a_raw_confidence_is_mapped_as_stored_not_as_computed() -> None:
    """The maps are fitted on raw confidences rounded to 4 places; a corner fitted at a
    rounded value must not be passed by the unrounded one (0.10352 is stored as 0.1035)."""
    steep = Calibration({"total_amount": IsotonicMap((0.1035, 0.1036), (0.0, 1.0))})
    assert steep.apply("total_amount", 0.10352369) == steep.apply("total_amount", 0.1035) == 0.0
    assert steep.apply("total_amount", 0.10358) == 1.0
