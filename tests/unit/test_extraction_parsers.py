"""Amount, date and label parsing used by claim extraction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.extraction.dates import find_dates, parse_date
from services.extraction.labels import Kind, classify
from services.extraction.money import find_amounts, format_amount, parse_amount


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.00", "9.00"),
        ("RM 12.50", "12.50"),
        ("RM12.50", "12.50"),
        ("MYR 1,234.56", "1234.56"),
        ("$8.20", "8.20"),
        ("TOTAL : RM 1,000.00", "1000.00"),
        ("12,50", "12.50"),  # decimal comma misread by OCR
        ("Total PM1.00", "1.00"),  # RM misread as PM
        ("08:25 PM 12.50", "12.50"),  # a time's PM is no currency, and no amount is lost
    ],
)
def test_amount_formats(text: str, expected: str) -> None:
    assert parse_amount(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["9.000", "12", "1,234", "TEL 03-1234 5678", "X9.00", "6%"])
def test_not_amounts(text: str) -> None:
    assert find_amounts(text) == []


def test_negative_rounding_amounts() -> None:
    for text in ("ROUNDING -0.02", "ROUNDING ADJ -RM 0.02", "ROUNDING 0.02-"):
        (amount,) = find_amounts(text)
        assert amount.negative and amount.value == Decimal("0.02")


def test_comma_decimal_is_flagged() -> None:
    (amount,) = find_amounts("TOTAL 9,00")
    assert amount.comma_decimal
    (amount,) = find_amounts("TOTAL 9.00")
    assert not amount.comma_decimal


def test_format_amount() -> None:
    assert format_amount(Decimal("12.5")) == "12.50"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25/12/2018", date(2018, 12, 25)),
        ("Date: 25/12/2018 8:13:39 PM", date(2018, 12, 25)),
        ("12-01-19 21:13", date(2019, 1, 12)),
        ("5.3.2018", date(2018, 3, 5)),
        ("2018-03-23", date(2018, 3, 23)),
        ("05 MAR 2018 18:24", date(2018, 3, 5)),
        ("28 Mar 18 18:32:36", date(2018, 3, 28)),
        ("30-DEC-17", date(2017, 12, 30)),
        ("Mar 5, 2018", date(2018, 3, 5)),
        ("3 Ogos 2019", date(2019, 8, 3)),
        ("15 Mac 2019", date(2019, 3, 15)),
        ("1 Mei 2019", date(2019, 5, 1)),
        ("20 Julai 2019", date(2019, 7, 20)),
        ("25 Disember 2019", date(2019, 12, 25)),
        ("25 DIS 19", date(2019, 12, 25)),
        ("9 Oktober 2019", date(2019, 10, 9)),
        ("12/28/2017", date(2017, 12, 28)),  # day-first impossible: read month-first
        ("04/03/201815:41:52", date(2018, 3, 4)),  # OCR glued the time on
        ("06/04/1711:43am", date(2017, 4, 6)),  # ... to a two-digit year
        ("25/12/2018:10:31", date(2018, 12, 25)),  # a colon for the space: 2018, not 2020
        ("05~05-17", date(2017, 5, 5)),  # "~" read for "-"
        ("20180304", date(2018, 3, 4)),
    ],
)
def test_date_formats(text: str, expected: date) -> None:
    assert parse_date(text) == expected


def test_month_first_reading_is_marked() -> None:
    (found,) = find_dates("12/28/2017")
    assert found.month_first
    (found,) = find_dates("28/12/2017")
    assert not found.month_first


@pytest.mark.parametrize("text", ["31/02/2018", "32/01/2018", "00/01/2018", "29/02/2019"])
def test_invalid_dates_rejected(text: str) -> None:
    assert find_dates(text) == []


@pytest.mark.parametrize("text", ["HC03-7 - 15", "TEL 03-3271 9872", "INV 18287/102/T0049"])
def test_codes_are_not_dates(text: str) -> None:
    assert find_dates(text) == []


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("GRAND TOTAL", Kind.GRAND_TOTAL),
        ("NETT TOTAL:", Kind.GRAND_TOTAL),
        ("TOTAL (INCL. GST)", Kind.GRAND_TOTAL),
        ("Total Sales (Inclusive of GST) :", Kind.GRAND_TOTAL),
        ("TOTAL ROUNDED", Kind.GRAND_TOTAL),
        ("Total Amt Payable :", Kind.GRAND_TOTAL),
        ("TOTAL (RM):", Kind.TOTAL),
        ("T0TAL:", Kind.TOTAL),
        ("Tatal:", Kind.TOTAL),
        ("Totel:", Kind.TOTAL),
        ("Due", Kind.TOTAL),  # "Due 7.50" above "Pay 20.00"
        ("Total Saies Inclusive GST :", Kind.GRAND_TOTAL),  # one word misread
        ("Total Sales (lnclusive of GST) :", Kind.GRAND_TOTAL),  # one letter misread
        ("Total Sales (Inciusive of GST) :", Kind.GRAND_TOTAL),
        ("Sub-totai:", Kind.SUBTOTAL),
        ("TOTL :", Kind.TOTAL),  # one letter dropped
        ("TotalSales (Inclusive GST)", Kind.GRAND_TOTAL),  # words glued
        ("TOTALLY", Kind.OTHER),
        ("TOTAL (GST INCL)", Kind.GRAND_TOTAL),
        ("Total GST Inclusive", Kind.TAX),
        ("Balance Due", Kind.OTHER),
        ("Pay", Kind.CASH),
        ("Amount to pay", Kind.GRAND_TOTAL),
        ("SUBTOTAL", Kind.SUBTOTAL),
        ("SUB-TOTAL (GST)", Kind.SUBTOTAL),
        ("Total Sales (Excluding GST) :", Kind.SUBTOTAL),
        ("CASH", Kind.CASH),
        ("CASH TENDERED", Kind.CASH),
        ("CHANGE", Kind.CHANGE),
        ("CHANGE DUE", Kind.CHANGE),
        ("ROUNDING ADJ", Kind.ROUNDING),
        ("GST 6%", Kind.TAX),
        ("SST @6%", Kind.TAX),
        ("Total GST (RM) :", Kind.TAX),
        ("TOTAL QTY: 9", Kind.OTHER),
        ("TOTAL DISCOUNT", Kind.OTHER),
        ("GST ID NO:", Kind.OTHER),
        ("RM", Kind.NONE),
    ],
)
def test_label_kinds(label: str, kind: Kind) -> None:
    assert classify(label) is kind


def test_a_month_name_date_glued_to_its_time() -> None:
    # A half-resolution photo loses the space: "05 Mar 201818:24".
    assert [m.value for m in find_dates("05 Mar 201818:24")] == [date(2018, 3, 5)]
    assert [m.value for m in find_dates("05 Mar 20181")] == []
