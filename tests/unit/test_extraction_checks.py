"""Corroboration of the total, currency and day/month order on synthetic receipts."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from services.extraction import extract_claim
from services.extraction.calibration import Calibration
from services.extraction.candidate_scorer import CandidateScorer
from services.extraction.labels import Kind, classify
from services.extraction.layout import build_rows
from services.extraction.origin import decide_currency, read_origin
from services.extraction.total_and_tax import Labelled, choose_total, labelled_amounts
from services.extraction.total_checks import (
    Verdict,
    corroborate,
    item_sum,
    labelled_total,
    repeated_total,
    subtotal_tax_rounding,
    tax_summary,
    tender_minus_change,
)
from tests.unit.test_extraction import (
    CLEAN_TAIL,
    HEADER,
    TODAY,
    Row,
    Seg,
    amount_row,
    codes,
    page,
    receipt,
)


def items(*rows: Row) -> list[Labelled]:
    return labelled_amounts(build_rows([page(*rows)]))


def d(text: str) -> Decimal:
    return Decimal(text)


# --- each check on its own -------------------------------------------------------------


def test_tender_minus_change() -> None:
    paid = items(
        amount_row("TOTAL", "50.00"), amount_row("CASH", "100.00"), amount_row("CHANGE", "50.00")
    )
    assert tender_minus_change(d("50.00"), paid) is Verdict.AGREES
    assert tender_minus_change(d("55.00"), paid) is Verdict.DISAGREES
    assert tender_minus_change(d("50.00"), items(amount_row("TOTAL", "50.00"))) is None


def test_tender_without_change() -> None:
    card = items(amount_row("TOTAL", "50.00"), amount_row("VISA", "50.00"))
    assert tender_minus_change(d("50.00"), card) is Verdict.AGREES
    short = items(amount_row("TOTAL", "50.00"), amount_row("CASH", "20.00"))
    assert tender_minus_change(d("50.00"), short) is Verdict.DISAGREES
    # More tendered and no change printed: says nothing either way.
    more = items(amount_row("TOTAL", "50.00"), amount_row("CASH", "60.00"))
    assert tender_minus_change(d("50.00"), more) is None


def test_subtotal_tax_rounding() -> None:
    block = items(
        amount_row("SUBTOTAL", "47.17"),
        amount_row("GST 6%", "2.83"),
        amount_row("ROUNDING", "-0.02"),
        amount_row("TOTAL", "49.98"),
    )
    assert subtotal_tax_rounding(d("49.98"), block) is Verdict.AGREES
    assert subtotal_tax_rounding(d("50.00"), block) is Verdict.AGREES  # without the rounding
    assert subtotal_tax_rounding(d("48.00"), block) is None  # fails: no corroboration, no veto
    assert subtotal_tax_rounding(d("50.00"), items(amount_row("TOTAL", "50.00"))) is None


def test_a_tender_printed_as_a_payment_out_is_the_tender() -> None:
    paid = items(
        amount_row("TOTAL", "5.75"), amount_row("CASH", "-50.00"), amount_row("CHANGE", "44.25")
    )
    assert tender_minus_change(d("5.75"), paid) is Verdict.AGREES


def test_service_charge_between_subtotal_and_tax() -> None:
    block = items(
        amount_row("SUB TOTAL", "295.00"),
        amount_row("SERVICE CHARGE 10%", "29.50"),
        amount_row("GST 6%", "19.47"),
        amount_row("ROUNDING ADJ", "-0.02"),
        amount_row("NET TOTAL", "343.95"),
    )
    assert subtotal_tax_rounding(d("343.95"), block) is Verdict.AGREES
    # The same amount under a line that is not a service charge adds nothing.
    other = items(
        amount_row("SUB TOTAL", "295.00"),
        amount_row("MEMBER PRICE", "29.50"),
        amount_row("GST 6%", "19.47"),
        amount_row("NET TOTAL", "343.97"),
    )
    assert subtotal_tax_rounding(d("343.97"), other) is None


def test_gst_summary_rows_per_tax_code() -> None:
    block = items(
        amount_row("Sub-total:", "593.10"),
        amount_row("Total:", "593.10"),
        [Seg(20, "SR= 6%"), Seg(300, "559.53"), Seg(500, "33.57")],
        [Seg(20, "ZR= 0%"), Seg(300, "10.00"), Seg(500, "0.00")],
    )
    assert tax_summary(d("603.10"), block) is Verdict.AGREES
    assert tax_summary(d("593.10"), block) is None  # the table says otherwise: no support
    # A TOTAL row under the codes is their sum: counted alone, not added to them.
    with_total = items(
        amount_row("Total Sales", "80.90"),
        amount_row("Rounding", "-0.01"),
        [Seg(20, "SR 0"), Seg(300, "80.91"), Seg(500, "0.00")],
        [Seg(20, "Total:"), Seg(300, "80.91"), Seg(500, "0.00")],
    )
    assert tax_summary(d("80.90"), with_total) is Verdict.AGREES
    # Two amounts whose second is more than any tax on the first are not a summary row.
    not_tax = items(
        amount_row("TOTAL", "45.00"), [Seg(20, "SR 6%"), Seg(300, "20.00"), Seg(500, "25.00")]
    )
    assert tax_summary(d("45.00"), not_tax) is None


def test_gst_summary_lines_per_rate() -> None:
    block = items(
        amount_row("Total 6% supplies (excl. GST):", "24.00"),
        amount_row("GST:", "1.44"),
        amount_row("Total 6% supplies (Inc. GST):", "25.44"),
        amount_row("Total 0% supplies:", "7.61"),
        amount_row("Total Payable:", "33.05"),
    )
    assert tax_summary(d("33.05"), block) is Verdict.AGREES
    assert tax_summary(d("133.05"), block) is None  # a misread total finds no support
    assert corroborate(d("33.05"), block).corroborated


def test_exact_total_plus_rounding() -> None:
    block = items(
        amount_row("TOTAL", "50.02"),
        amount_row("ROUNDING ADJ", "-0.02"),
        amount_row("TOTAL ROUNDED", "50.00"),
    )
    assert subtotal_tax_rounding(d("50.00"), block) is Verdict.AGREES
    assert labelled_total(d("50.00"), block)


def test_repeated_total() -> None:
    twice = items(amount_row("TOTAL", "50.00"), amount_row("NETT TOTAL", "50.00"))
    assert repeated_total(d("50.00"), twice) is Verdict.AGREES
    once = items(amount_row("TOTAL", "50.00"), amount_row("CASH", "50.00"))
    assert repeated_total(d("50.00"), once) is None


def test_item_sum() -> None:
    lines = items(
        amount_row("CONSULTATION", "30.00"),
        amount_row("MEDICINE 2 X 8.50", "17.00"),
        amount_row("GST 6%", "2.82"),
        amount_row("TOTAL", "49.82"),
    )
    assert item_sum(d("49.82"), lines) is Verdict.AGREES  # items + tax
    assert item_sum(d("49.80"), lines) is Verdict.AGREES  # ... rounded to 5 sen
    assert item_sum(d("51.00"), lines) is None


def test_corroborate_names_the_checks() -> None:
    block = items(*CLEAN_TAIL)
    result = corroborate(d("50.00"), block)
    assert result.agreed == ("tender_minus_change", "subtotal_tax_rounding")
    assert result.disagreed == () and result.corroborated
    bare = corroborate(d("50.00"), items(amount_row("GRAND TOTAL", "50.00")))
    assert bare.agreed == () and not bare.corroborated


# --- routing -------------------------------------------------------------------------


def test_uncorroborated_total_goes_to_review_however_confident() -> None:
    result = extract_claim(
        [receipt(amount_row("GRAND TOTAL", "RM 50.00"))], today=TODAY, threshold=0.5
    )
    assert result.fields["total_amount"] == "50.00"
    assert result.route == "review"
    assert "total_unconfirmed" in codes(result)


def test_an_unlabelled_total_the_receipt_reproduces_is_likelier_but_still_reviewed() -> None:
    raw = Calibration.identity()
    paid = extract_claim([receipt(amount_row("PAID", "47.17"))], today=TODAY, calibration=raw)
    guess = extract_claim(
        [receipt("THANK YOU", amount_row("XYZ", "99.99"))], today=TODAY, calibration=raw
    )
    assert paid.field_confidence["total_amount"] > guess.field_confidence["total_amount"]
    for result in (paid, guess):
        assert "unlabelled_total" in codes(result)
        assert result.route == "review"


def test_a_rate_on_the_total_line_is_part_of_its_label() -> None:
    # "6.00%" is the GST rate, not an amount: the label of 47.70 is the whole line.
    (total,) = [it for it in items("TOTAL INCL. GST 6.00% RM 47.70") if it.value == d("47.70")]
    assert total.kind is Kind.GRAND_TOTAL
    assert [it.value for it in items("SUBTOTAL INCL. GST 6.00% RM 47.70")] == [d("47.70")]


def test_a_subtotal_the_payment_pays_is_the_total_when_no_total_line_is_printed() -> None:
    # The till prints no TOTAL: "SUBTOTAL 28.70" is the sale, and the payment confirms it.
    tail = [
        amount_row("SUBTOTAL", "28.70"),
        amount_row("CASH", "100.00"),
        amount_row("CHANGE", "71.30"),
        amount_row("INC 6% GST", "1.62"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "28.70"
    assert result.route == "submit", result.reasons
    # Not when the payment pays something else: the subtotal stays a guess.
    unpaid = [*tail[:1], amount_row("CASH", "100.00"), amount_row("CHANGE", "70.00")]
    assert extract_claim([receipt(*unpaid)], today=TODAY).route == "review"
    # And a printed total is the total, whatever the subtotal.
    with_total = [amount_row("SUBTOTAL", "28.70"), amount_row("TOTAL", "30.32"), *tail[1:3]]
    assert not labelled_total(d("28.70"), items(*with_total))


def test_corroborated_total_reason_lists_nothing_and_submits() -> None:
    tail = [amount_row("GRAND TOTAL", "RM 50.00"), amount_row("CASH", "RM 50.00")]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.route == "submit", result.reasons


def test_rounding_confirmed_by_change_submits_the_paid_total() -> None:
    tail = [
        amount_row("SUBTOTAL", "47.20"),
        amount_row("SST 6%", "2.83"),
        amount_row("TOTAL", "50.03"),
        amount_row("PEMBUNDARAN", "-0.03"),
        amount_row("TOTAL", "50.00"),
        amount_row("CASH", "100.00"),
        amount_row("CHANGE", "50.00"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "50.00"
    assert result.route == "submit", result.reasons


def test_rounding_with_a_card_paying_the_exact_amount_goes_to_review() -> None:
    tail = [
        amount_row("TOTAL", "50.02"),
        amount_row("RND ADJ", "-0.02"),
        amount_row("TOTAL ROUNDED", "50.00"),
        amount_row("VISA", "50.02"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.route == "review"
    assert "rounding_adjusted" in codes(result)
    # The rules take the rounded 50.00, which the card contradicts; the learned scorer
    # may take the 50.02 the card paid. A person confirms either way.
    rules = extract_claim(
        [receipt(*tail)], today=TODAY, candidate_scorer=CandidateScorer.rules_only()
    )
    assert rules.route == "review"
    assert {"total_mismatch", "rounding_adjusted"} <= codes(rules)


@pytest.mark.parametrize(
    ("payment", "paid"),
    [
        ([amount_row("CREDIT", "RM 45.35"), amount_row("CHANGE", "RM 0.00")], "45.35"),
        ([amount_row("CASH", "RM 50.00"), amount_row("CHANGE", "RM 4.65")], "45.35"),
    ],
)
def test_a_rounding_line_that_prints_the_rounded_total_is_the_total_paid(
    payment: list[Row], paid: str
) -> None:
    # "Rounding RM 45.35" under "Total Sales RM 45.34": the total after rounding, which
    # the payment confirms.
    tail = [
        amount_row("Total Sales (Inclusive GST)", "RM 45.34"),
        amount_row("Rounding", "RM 45.35"),
        *payment,
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == paid
    assert result.route == "submit", result.reasons


def test_a_rounding_line_keeps_its_kind_unless_it_prints_a_rounded_total() -> None:
    def kinds(*rows: Row) -> list[Kind]:
        return [it.kind for it in labelled_amounts(build_rows([page(*rows)]))]

    total = amount_row("TOTAL", "45.34")
    assert kinds(total, amount_row("Rounding", "0.01")) == [Kind.TOTAL, Kind.ROUNDING]
    # Too far from any total to be its rounding, or not on the 5-sen grid.
    assert kinds(total, amount_row("Rounding", "46.00")) == [Kind.TOTAL, Kind.ROUNDING]
    assert kinds(total, amount_row("Rounding", "45.36")) == [Kind.TOTAL, Kind.ROUNDING]
    assert kinds(total, amount_row("Rounding", "45.35")) == [Kind.TOTAL, Kind.TOTAL]
    # Printed above the total it would round: not its rounding.
    assert kinds(amount_row("Rounding", "45.35"), total) == [Kind.ROUNDING, Kind.TOTAL]


# An exact total and the cash-rounded one, 2 sen more, with no rounding line printed.
_EXACT = amount_row("TOTAL WITH SST", "50.03")
_ROUNDED = amount_row("TOTAL", "50.05")
_SUMS = [amount_row("SUBTOTAL", "47.20"), amount_row("SST 6%", "2.83")]


def test_unprinted_rounding_on_the_last_total_line_was_paid() -> None:
    result = extract_claim([receipt(*_SUMS, _EXACT, _ROUNDED)], today=TODAY)
    assert result.fields["total_amount"] == "50.05"
    assert result.route == "submit", result.reasons


def test_unprinted_rounding_decided_by_the_payment() -> None:
    paid = [amount_row("CASH", "100.00"), amount_row("CHANGE", "49.95")]
    result = extract_claim([receipt(*_SUMS, _ROUNDED, _EXACT, *paid)], today=TODAY)
    assert result.fields["total_amount"] == "50.05"
    assert result.route == "submit", result.reasons
    card = extract_claim(
        [receipt(*_SUMS, _EXACT, _ROUNDED, amount_row("VISA", "50.03"))], today=TODAY
    )
    assert card.fields["total_amount"] == "50.03"  # a card paid the exact amount
    assert "rounding_adjusted" not in codes(card)


def test_unprinted_rounding_that_nothing_decides_goes_to_review() -> None:
    # The exact total is printed last and no payment is printed: either could be paid.
    result = extract_claim([receipt(*_SUMS, _ROUNDED, _EXACT)], today=TODAY)
    assert result.route == "review"
    assert "rounding_adjusted" in codes(result)


def test_more_than_rounding_apart_is_not_a_rounding_pair() -> None:
    block = items(amount_row("TOTAL WITH SST", "50.00"), amount_row("TOTAL", "50.05"))
    assert not choose_total(block).rounding_undecided


@pytest.mark.parametrize(
    "label",
    ["Total 0% supplies:", "Total 6% supplies (Inc. GST):", "Total 6% suppiies (excl. GST):",
     "Total SR", "Total ZR :"],
)  # fmt: skip
def test_gst_summary_totals_are_not_total_candidates(label: str) -> None:
    assert classify(label) is Kind.OTHER


def test_summary_line_does_not_win_over_a_negative_read_payable() -> None:
    # "Total Payable: -50.00": a dash read as a minus (or a credit note). The GST summary's
    # zero-rated share, printed twice and equal to the items' sum, must not take its place.
    tail = [
        amount_row("Total 0% supplies:", "47.17"),
        amount_row("Total 6% supplies (Inc. GST):", "2.83"),
        amount_row("Total 0% supplies:", "47.17"),
        amount_row("Total Payable:", "-50.00"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "50.00"
    assert result.route == "review"
    assert "negative_total" in codes(result)


def test_negative_total_line_is_read_as_its_digits_and_flagged() -> None:
    flipped = choose_total(items(amount_row("Total Payable:", "-50.00")))
    assert flipped.value == d("50.00") and flipped.negative_total
    rounding = choose_total(items(amount_row("ROUNDING", "-0.02"), amount_row("TOTAL", "50.00")))
    assert rounding.value == d("50.00") and not rounding.negative_total


# --- currency ------------------------------------------------------------------------

US_HEADER: list[Row] = [
    "CORNER PHARMACY INC",
    "123 MAIN STREET",
    "AUSTIN, TX 78701",
    "Date: 12/20/2018 10:31",
    amount_row("CONSULTATION", "30.00"),
    amount_row("MEDICINE", "20.00"),
]


def _origin(*rows: Row):  # type: ignore[no-untyped-def]
    return read_origin(build_rows([page(*rows)]))


@pytest.mark.parametrize(
    ("text", "code"),
    [("TOTAL US$ 50.00", "USD"), ("TOTAL S$50.00", "SGD"), ("TOTAL € 50.00", "EUR"),
     ("TOTAL £50.00", "GBP"), ("TOTAL ¥5000.00", "JPY"), ("TOTAL USD 50.00", "USD"),
     ("TOTAL 50.00 SGD", "SGD"), ("AMOUNT (EUR)", "EUR")],
)  # fmt: skip
def test_foreign_currency_is_read(text: str, code: str) -> None:
    money = decide_currency(_origin(*HEADER, text))
    assert (money.value, money.reason) == (code, "foreign_currency")


@pytest.mark.parametrize(
    "text", ["TOTAL RM 50.00", "TOTAL 50.00", "CNY DECO A002 (RM) 50.00", "SDN BND TOTAL 50.00"]
)
def test_malaysian_receipts_stay_myr(text: str) -> None:
    money = decide_currency(_origin(*HEADER, text))
    assert (money.value, money.reason) == ("MYR", None)


def test_bare_dollar_is_myr_only_on_a_malaysian_receipt() -> None:
    assert decide_currency(_origin(*HEADER, "TOTAL $50.00")).value == "MYR"
    money = decide_currency(_origin("CORNER PHARMACY", "TOTAL $50.00"))
    assert (money.value, money.reason) == (None, "foreign_currency")


def test_no_currency_and_nothing_malaysian_is_not_assumed_ringgit() -> None:
    # A European or British receipt whose symbol is not printed, or was lost to the photo.
    rows = ("BÄCKEREI SCHMIDT", "HAUPTSTRASSE 5", "10115 BERLIN", "BROT 1.5 KG 4.20")
    money = decide_currency(_origin(*rows, "SUMME 4.20"))
    assert (money.value, money.reason) == (None, "currency_unconfirmed")
    # Kampung before a name is Malaysian; KG after a number is a weight.
    assert _origin("NO 5, KG BARU", "TOTAL 4.20").malaysian == ("address",)
    assert _origin("BROT 1.5 KG", "TOTAL 4.20").malaysian == ()
    # Another configured currency has no place signals to ask for.
    assert decide_currency(_origin(*rows, "SUMME 4.20"), home="EUR").value == "EUR"


def test_configured_currency_is_home() -> None:
    assert decide_currency(_origin("TOTAL S$50.00"), home="SGD").reason is None
    assert (
        decide_currency(_origin(*HEADER, "TOTAL RM 50.00"), home="SGD").reason == "foreign_currency"
    )


def test_foreign_receipt_in_another_currency_goes_to_review() -> None:
    tail = [amount_row("TOTAL", "USD 50.00"), amount_row("CASH", "USD 50.00")]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["currency"] == "USD"
    assert result.route == "review"
    assert "foreign_currency" in codes(result)


def test_no_currency_on_a_foreign_looking_receipt_is_not_silently_myr() -> None:
    tail = [amount_row("TOTAL", "50.00"), amount_row("CASH", "50.00")]
    result = extract_claim([page(*US_HEADER, *tail)], today=TODAY)
    assert result.fields["currency"] is None
    assert result.route == "review"
    assert "currency_unconfirmed" in codes(result)


def test_extract_claim_takes_the_configured_currency() -> None:
    tail = [amount_row("TOTAL", "S$ 50.00"), amount_row("CASH", "S$ 50.00")]
    assert "foreign_currency" in codes(extract_claim([receipt(*tail)], today=TODAY))
    sg = extract_claim([receipt(*tail)], today=TODAY, currency="SGD")
    assert "foreign_currency" not in codes(sg)


# --- day/month order -----------------------------------------------------------------

PLAIN_HEADER: list[Row] = ["CORNER PHARMACY", "Invoice No: INV-20180012"]
PAID: list[Row] = [amount_row("TOTAL", "50.00"), amount_row("CASH", "50.00")]


def _dated(header: Sequence[Row], when: str) -> list[Row]:
    return [*header, f"Date: {when} 10:31", *PAID]


def test_ambiguous_date_without_context_goes_to_review() -> None:
    result = extract_claim([page(*_dated(PLAIN_HEADER, "03/04/2018"))], today=TODAY)
    assert result.fields["service_date"] == "2018-04-03"
    assert result.route == "review"
    assert "ambiguous_date" in codes(result)


@pytest.mark.parametrize(
    "context",
    ["NO 12, JALAN MERANTI 2", "47400 PETALING JAYA, SELANGOR", "MEDIVIEW KLINIK SDN BHD",
     "GST REG NO: 000123456789", "WWW.MEDIVIEW.COM.MY", "TOTAL RM 50.00"],
)  # fmt: skip
def test_ambiguous_date_on_a_malaysian_receipt_is_day_first(context: str) -> None:
    result = extract_claim([page(*_dated([*PLAIN_HEADER, context], "03/04/2018"))], today=TODAY)
    assert result.fields["service_date"] == "2018-04-03"
    assert "ambiguous_date" not in codes(result)
    assert result.route == "submit", result.reasons


def test_another_date_on_the_receipt_settles_the_order() -> None:
    header = [*PLAIN_HEADER, "Printed 25/12/2018"]
    result = extract_claim([page(*_dated(header, "03/04/2018"))], today=TODAY)
    assert "ambiguous_date" not in codes(result)


def test_unambiguous_dates_need_no_context() -> None:
    for when in ("25/12/2018", "04/04/2018", "3 Apr 2018"):
        result = extract_claim([page(*_dated(PLAIN_HEADER, when))], today=TODAY)
        assert "ambiguous_date" not in codes(result), when


def test_us_receipt_with_ambiguous_date_goes_to_review() -> None:
    header = [*US_HEADER[:3], "Date: 03/04/2018 10:31"]
    result = extract_claim([page(*header, *PAID)], today=TODAY)
    assert {"ambiguous_date", "currency_unconfirmed"} <= codes(result)


def test_a_rounded_total_printed_below_under_a_misread_label_goes_to_review() -> None:
    # Train receipt 194: the rounding line's amount is unreadable ("-J.02") and the final
    # "Total After Adj" lost its T, so the exact total looked corroborated (subtotal) and
    # was submitted; the customer paid the rounded one.
    tail = [
        amount_row("SUB-TOTAL", "47.17"),
        amount_row("TOTAL SALES INCL GST", "47.17"),
        amount_row("ROUNDING ADJ", "-J.02"),
        amount_row("lotal After Adj Incl GST", "47.15"),
        amount_row("CASH", "50.00"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert "rounding_adjusted" in codes(result)
    assert result.route == "review"


def test_the_payment_settles_an_exact_total_with_its_rounding_printed_below() -> None:
    tail = [
        amount_row("TOTAL", "47.17"),
        amount_row("CASH", "50.00"),
        amount_row("CHANGE", "2.83"),
        amount_row("lotal After Adj", "47.15"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "47.17"
    assert "rounding_adjusted" not in codes(result)


def test_a_total_off_the_5_sen_grid_after_a_made_rounding_goes_to_review() -> None:
    # A worn "0" read as "3" on every line (item 5.03, TOTAL 5.03, ROUNDING 0.03, CASH
    # 10.03; dev receipt 090 at JPEG quality 30 under a trial int8 detector) passed every
    # sum and was submitted as 5.03; the receipt's total after rounding is 5.00.
    header = [*HEADER[:10], amount_row("8999002310564 2 * 2.50", "5.03")]
    tail = [
        amount_row("Total", "5.03"),
        amount_row("Rounding Adjustment", "0.03"),
        amount_row("Total After Rounding", "5.00"),
        amount_row("Cash", "10.03"),
        amount_row("CHANGE", "5.00"),
    ]
    result = extract_claim([receipt(*tail, header=header)], today=TODAY)
    assert result.route == "review"
    assert "rounding_adjusted" in codes(result)


def _gst_receipt_rows(day: str, *tail: Row) -> list[Row]:
    """The usual header (with its GST registration number) dated ``day``."""
    header = [r for r in HEADER if not (isinstance(r, str) and r.startswith("Date"))]
    return [*header, f"Date: {day}", *tail]


@pytest.mark.parametrize(
    ("day", "tail", "flagged"),
    [
        # GST charged (a GST line with its amount) on a date before GST existed: misread.
        ("15/03/2013", CLEAN_TAIL, True),
        ("15/03/2018", CLEAN_TAIL, False),
        # A GST rate printed is GST charged ("PRICE INCLUSIVE 6% GST").
        (
            "15/03/2013",
            [amount_row("TOTAL", "50.00"), amount_row("CASH", "50.00"), "PRICE INCLUSIVE 6% GST"],
            True,
        ),
        # No GST charged: an old date is no contradiction (a GST number alone charges none).
        ("15/03/2013", [amount_row("TOTAL", "50.00"), amount_row("CASH", "50.00")], False),
    ],
)
def test_a_date_before_gst_on_a_receipt_that_charges_gst_goes_to_review(
    day: str, tail: list[Row], flagged: bool
) -> None:
    result = extract_claim([page(*_gst_receipt_rows(day, *tail))], today=TODAY)
    assert ("date_before_gst" in codes(result)) is flagged
    if flagged:
        assert result.route == "review"
