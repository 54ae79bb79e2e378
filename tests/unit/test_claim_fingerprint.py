"""Claim fingerprints: normalisation of each part, and which claims share a key."""

from __future__ import annotations

import pytest

from services.claim_fingerprint import (
    claim_fingerprint,
    normalise_amount,
    normalise_date,
    normalise_invoice,
    normalise_provider,
)

CLAIM = {
    "total_amount": "90.80",
    "service_date": "2022-01-29",
    "provider_name": "Kota Medical Clinic",
    "invoice_number": "T618-01734",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("T618-01734", "T61801734"),
        (" t618 / 01734. ", "T61801734"),
        ("INV_2020_99079", "INV202099079"),
        ("TO18-O1734", "TO18O1734"),  # no O -> 0 guessing
        ("--", None),
        ("", None),
        (None, None),
    ],
)
def test_invoice_numbers_keep_letters_and_digits_in_upper_case(
    raw: str | None, expected: str | None
) -> None:
    assert normalise_invoice(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("90.8", "90.80"),
        ("90.80", "90.80"),
        ("RM 1,234.5", "1234.50"),
        ("rm90", "90.00"),
        ("1234", "1234.00"),
        ("abc", None),
        ("NaN", None),
        ("Infinity", None),
        ("", None),
        (None, None),
    ],
)
def test_amounts_are_decimals_with_two_places(raw: str | None, expected: str | None) -> None:
    assert normalise_amount(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2022-01-29", "2022-01-29"),
        (" 2022-01-29 ", "2022-01-29"),
        ("29/01/22", None),
        (None, None),
    ],
)
def test_dates_are_iso_or_nothing(raw: str | None, expected: str | None) -> None:
    assert normalise_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Kota Medical Clinic", "KOTA MEDICAL CLINIC"),
        ("  kota   medical\nclinic ", "KOTA MEDICAL CLINIC"),
        ("Klinik Gigi Dr. Tan Sdn. Bhd.", "KLINIK GIGI DR TAN"),
        ("KLINIK GIGI DR TAN SDN BHD", "KLINIK GIGI DR TAN"),
        ("Farmasi Jaya (M) Sdn Bhd", "FARMASI JAYA"),
        ("Pusat Perubatan Ar-Rahman", "PUSAT PERUBATAN AR RAHMAN"),
        ("Sinar Enterprise", "SINAR"),
        ("Kedai M", "KEDAI M"),  # "M" goes only after a company suffix
        ("Sdn. Bhd.", None),
        ("", None),
        (None, None),
    ],
)
def test_provider_names_drop_case_punctuation_and_company_suffixes(
    raw: str | None, expected: str | None
) -> None:
    assert normalise_provider(raw) == expected


def test_the_same_claim_written_differently_has_the_same_keys() -> None:
    other = {
        "total_amount": "RM 90.8",
        "service_date": "2022-01-29",
        "provider_name": "KOTA MEDICAL CLINIC SDN. BHD.",
        "invoice_number": "t618 01734",
    }
    first, second = claim_fingerprint(CLAIM), claim_fingerprint(other)
    assert first.strict == second.strict is not None
    assert first.loose == second.loose is not None
    assert len(first.strict) == 64 and "T618" not in first.strict  # a hash, not the claim


@pytest.mark.parametrize(
    "change",
    [
        {"invoice_number": "T618-01735"},
        {"total_amount": "90.81"},
        {"service_date": "2022-01-30"},
    ],
)
def test_another_invoice_amount_or_date_is_another_strict_key(change: dict[str, str]) -> None:
    assert claim_fingerprint({**CLAIM, **change}).strict != claim_fingerprint(CLAIM).strict


def test_the_provider_is_in_the_loose_key_only() -> None:
    renamed = claim_fingerprint({**CLAIM, "provider_name": "Other Clinic"})
    assert renamed.strict == claim_fingerprint(CLAIM).strict
    assert renamed.loose != claim_fingerprint(CLAIM).loose


@pytest.mark.parametrize(
    ("missing", "has_strict", "has_loose"),
    [
        ("invoice_number", False, True),
        ("provider_name", True, False),
        ("total_amount", False, False),
        ("service_date", False, False),
    ],
)
def test_a_key_needs_all_its_parts(missing: str, has_strict: bool, has_loose: bool) -> None:
    fingerprint = claim_fingerprint({**CLAIM, missing: None})
    assert (fingerprint.strict is not None, fingerprint.loose is not None) == (
        has_strict,
        has_loose,
    )
    assert bool(fingerprint) is (has_strict or has_loose)


@pytest.mark.parametrize(
    ("other", "same"),
    [
        ("Kota Medical Clinic", True),
        ("KOTA MEDICAL CLINIC SDN BHD", True),
        ("Kota Medical Cli", True),  # cut short by OCR
        ("Kota Medical Clinic Bangsar", True),
        (None, True),  # not read: invoice, amount and date already agree
        ("Green Leaf Pharmacy", False),
    ],
)
def test_providers_match_when_equal_or_one_contains_the_other(
    other: str | None, same: bool
) -> None:
    assert claim_fingerprint(CLAIM).same_provider(other) is same
