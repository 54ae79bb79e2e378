"""extract_claim on synthetic receipts laid out with real geometry."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pytest

from services.extraction import ClaimExtraction, extract_claim
from services.extraction.calibration import Calibration
from services.extraction.confidence import LOOKALIKE_CAP
from services.ocr.result import PageText, TextLine

TODAY = date(2019, 6, 30)
ROW_PITCH = 30
LINE_HEIGHT = 20
CHAR_WIDTH = 10


@dataclass(frozen=True)
class Seg:
    """A text box on a row: x position, text, and optionally weak characters."""

    x: float
    text: str
    weak: str = ""  # substring whose characters get `weak_conf`
    weak_conf: float = 0.3
    dy: float = 0.0  # vertical offset from the row (skewed photos, split boxes)
    weak_from: int = 0  # look for `weak` from this offset ("O" of "NO: 1O0", not of "NO")


Row = str | Seg | Sequence[Seg]


def _line(seg: Seg, y: float) -> TextLine:
    confs = [0.995] * len(seg.text)
    if seg.weak:
        start = seg.text.index(seg.weak, seg.weak_from)
        for i in range(start, start + len(seg.weak)):
            confs[i] = seg.weak_conf
    x0, x1 = seg.x, seg.x + CHAR_WIDTH * len(seg.text)
    top, bottom = y + seg.dy, y + seg.dy + LINE_HEIGHT
    box = ((x0, top), (x1, top), (x1, bottom), (x0, bottom))
    return TextLine(seg.text, box, min(confs, default=1.0), tuple(confs))


def _rotate(line: TextLine, degrees: float) -> TextLine:
    a = math.radians(degrees)
    box = tuple(
        (x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)) for x, y in line.box
    )
    return TextLine(line.text, box, line.confidence, line.char_confidences)  # type: ignore[arg-type]


def page(*rows: Row, width: int = 600, shuffle: bool = True, degrees: float = 0.0) -> PageText:
    """A page with one visual row per argument, ROW_PITCH apart, from the top.

    ``degrees`` rotates the whole page, as a receipt photographed slightly askew.
    """
    lines: list[TextLine] = []
    for n, row in enumerate(rows):
        y = 20 + n * ROW_PITCH
        segs = [Seg(20, row)] if isinstance(row, str) else [row] if isinstance(row, Seg) else row
        lines.extend(_rotate(_line(seg, y), degrees) for seg in segs)
    if shuffle:  # OCR engines do not promise reading order
        lines = lines[1::2] + lines[0::2]
    return PageText(width, 20 + len(rows) * ROW_PITCH + 40, tuple(lines))


def amount_row(label: str, amount: str, **weak: object) -> list[Seg]:
    """Label on the left, amount right-aligned in its own box (as OCR splits them)."""
    return [Seg(20, label), Seg(560 - CHAR_WIDTH * len(amount), amount, **weak)]  # type: ignore[arg-type]


HEADER: list[Row] = [
    "MEDIVIEW KLINIK SDN BHD",
    "(123456-X)",
    "NO 12, JALAN MERANTI 2,",
    "TAMAN MERANTI,",
    "47400 PETALING JAYA, SELANGOR",
    "TEL: 03-1234 5678",
    "GST REG NO: 000123456789",
    "TAX INVOICE",
    "Invoice No: INV-20180012",
    "Date: 25/12/2018 10:31:02",
    amount_row("CONSULTATION", "30.00"),
    amount_row("MEDICINE", "17.17"),
]


def receipt(*tail: Row, header: Sequence[Row] = HEADER, degrees: float = 0.0) -> PageText:
    return page(*header, *tail, "THANK YOU", "PLEASE COME AGAIN", degrees=degrees)


CLEAN_TAIL: list[Row] = [
    amount_row("SUBTOTAL", "47.17"),
    amount_row("GST 6%", "2.83"),
    amount_row("TOTAL (INCL. GST)", "RM 50.00"),
    amount_row("CASH", "100.00"),
    amount_row("CHANGE", "50.00"),
]


def codes(result: ClaimExtraction) -> set[str]:
    return {r.code for r in result.reasons}


def test_clean_receipt_is_submitted_with_all_fields() -> None:
    result = extract_claim([receipt(*CLEAN_TAIL)], today=TODAY)

    assert result.route == "submit", result.reasons
    assert result.reasons == []
    assert result.fields == {
        "total_amount": "50.00",
        "service_date": "2018-12-25",
        "provider_name": "MEDIVIEW KLINIK SDN BHD",
        "provider_address": "NO 12, JALAN MERANTI 2, TAMAN MERANTI, 47400 PETALING JAYA, SELANGOR",
        "invoice_number": "INV-20180012",
        "tax_amount": "2.83",
        "currency": "MYR",
    }
    assert result.confidence >= 0.9
    assert result.field_confidence["invoice_number"] >= 0.9
    assert set(result.field_confidence) == set(result.fields)
    assert all(0.0 <= c <= 1.0 for c in result.field_confidence.values())


def test_distractors_are_not_taken_for_the_total() -> None:
    tail = [
        amount_row("SUB TOTAL", "47.17"),
        amount_row("TOTAL QTY: 2", "2.00"),
        amount_row("GRAND TOTAL", "50.00"),
        amount_row("CASH TENDERED", "500.00"),
        amount_row("CHANGE", "450.00"),
        "GST SUMMARY",
        [Seg(20, "TOTAL :"), Seg(300, "47.17"), Seg(480, "2.83")],
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "50.00"
    assert "ambiguous_total" not in codes(result)


def test_label_and_amount_in_separate_boxes_on_one_row() -> None:
    # The amount box sits 7px lower than its label: still the same visual row.
    tail = [
        [Seg(20, "TOTAL"), Seg(500, "50.00", dy=7)],
        [Seg(20, "CASH"), Seg(500, "100.00", dy=7)],
        [Seg(20, "CHANGE"), Seg(500, "50.00", dy=7)],
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "50.00"


@pytest.mark.parametrize("degrees", [-2.0, 2.0])
def test_rotated_photo_keeps_labels_with_their_amounts(degrees: float) -> None:
    # At 2 degrees a right-aligned amount drifts ~17px, most of a row, from its label.
    tail = [
        amount_row("SUBTOTAL", "47.17"),
        amount_row("GST 6%", "2.83"),
        amount_row("TOTAL", "50.00"),
        amount_row("CASH", "100.00"),
        amount_row("CHANGE", "50.00"),
    ]
    result = extract_claim([receipt(*tail, degrees=degrees)], today=TODAY)
    assert result.fields["total_amount"] == "50.00"
    assert result.fields["tax_amount"] == "2.83"
    assert result.route == "submit", result.reasons


def test_amount_on_the_row_under_its_label() -> None:
    tail = [Seg(20, "TOTAL AMOUNT PAYABLE (RM)"), Seg(480, "50.00"), amount_row("CASH", "50.00")]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "50.00"


def test_low_character_confidence_on_total_digits_goes_to_review() -> None:
    tail = [amount_row("TOTAL", "50.00", weak="50", weak_conf=0.4)]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.route == "review"
    assert "low_confidence_total" in codes(result)
    clean = extract_claim([receipt(amount_row("TOTAL", "50.00"))], today=TODAY)
    assert result.field_confidence["total_amount"] < clean.field_confidence["total_amount"]


def test_weak_characters_outside_the_value_do_not_matter() -> None:
    weak_label = [Seg(20, "T0TAL (INCL. GST)", weak="T0TAL"), Seg(480, "RM 50.00")]
    tail = [*CLEAN_TAIL[:2], weak_label]
    tail += CLEAN_TAIL[3:]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.route == "submit", result.reasons


def test_a_doubted_date_separator_does_not_doubt_the_date() -> None:
    # "30/03/2018" with its slashes read at 0.7: no digit is in doubt, so neither is the date.
    header = [*HEADER]
    header[9] = Seg(20, "Date: 25/12/2018 10:31:02", weak="/", weak_conf=0.7, weak_from=6)
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.route == "submit", result.reasons
    # The same doubt on a digit of the date does hold it back.
    header[9] = Seg(20, "Date: 25/12/2018 10:31:02", weak="5", weak_conf=0.7, weak_from=6)
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert "low_confidence_date" in codes(result)


def test_one_doubted_letter_lowers_the_name_confidence() -> None:
    header = [*HEADER]
    header[0] = Seg(20, "MEDIVIEW KLINIK SDN BHD", weak="K", weak_conf=0.6)
    raw = Calibration.identity()
    doubted = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY, calibration=raw)
    clean = extract_claim([receipt(*CLEAN_TAIL)], today=TODAY, calibration=raw)
    assert doubted.fields["provider_name"] == clean.fields["provider_name"]
    # The weakest letter bounds it, however clean the rest of the name reads.
    assert (
        doubted.field_confidence["provider_name"] <= 0.6 < clean.field_confidence["provider_name"]
    )


def test_no_amount_means_missing_total() -> None:
    result = extract_claim([receipt(header=HEADER[:10])], today=TODAY)
    assert result.fields["total_amount"] is None
    assert result.route == "review"
    assert "missing_total" in codes(result)


def test_future_date_goes_to_review() -> None:
    header = [*HEADER[:9], "Date: 25/12/2019 10:31:02", *HEADER[10:]]
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.fields["service_date"] == "2019-12-25"
    assert result.route == "review"
    assert "date_in_future" in codes(result)


def test_missing_date_goes_to_review() -> None:
    header = [h for h in HEADER if not (isinstance(h, str) and h.startswith("Date"))]
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.fields["service_date"] is None
    assert "missing_date" in codes(result)
    assert result.route == "review"


@pytest.mark.parametrize("pages", [[], [PageText(600, 800, ())], [page("  ", "-", "*")]])
def test_blank_page_is_no_text(pages: list[PageText]) -> None:
    result = extract_claim(pages, today=TODAY)
    assert result.route == "review"
    assert [r.code for r in result.reasons] == ["no_text"]
    assert result.confidence == 0.0
    assert all(v is None for v in result.fields.values())


def test_cross_checks_raise_confidence() -> None:
    alone = extract_claim([receipt(amount_row("TOTAL", "50.00"))], today=TODAY)
    checked = extract_claim(
        [
            receipt(
                amount_row("SUBTOTAL", "47.17"),
                amount_row("GST 6%", "2.83"),
                amount_row("TOTAL", "50.00"),
                amount_row("CASH", "100.00"),
                amount_row("CHANGE", "50.00"),
            )
        ],
        today=TODAY,
    )
    assert checked.field_confidence["total_amount"] > alone.field_confidence["total_amount"]
    assert alone.route == "review" and "low_confidence_total" in codes(alone)
    assert checked.route == "submit"


def test_payment_that_contradicts_the_total_lowers_confidence() -> None:
    tail = [
        amount_row("GRAND TOTAL", "50.00"),
        amount_row("CASH", "100.00"),
        amount_row("CHANGE", "40.00"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert "total_mismatch" in codes(result)
    assert result.route == "review"


def test_competing_totals_are_ambiguous() -> None:
    tail = [amount_row("TOTAL", "50.00"), amount_row("GRAND TOTAL", "55.00")]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "55.00"
    assert "ambiguous_total" in codes(result)
    assert result.route == "review"


def test_a_total_before_tax_is_part_of_the_total_not_a_rival() -> None:
    tail = [
        amount_row("5 Item(s) Total (MYR) :", "20.00"),
        amount_row("GST @ 6% :", "1.20"),
        amount_row("Net Total (MYR) :", "21.20"),
        amount_row("Cash", "21.20"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "21.20"
    assert "ambiguous_total" not in codes(result)
    # A total that no printed tax or subtotal brings up to the chosen one stays a rival.
    tail[1] = amount_row("GST @ 6% :", "1.10")
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert "ambiguous_total" in codes(result)


@pytest.mark.parametrize(
    "stages",
    [
        # Before the discount: "Total 277.90", "Discount: 0.90", then the total paid.
        [amount_row("Total", "277.90"), amount_row("Discount:", "0.90")],
        [amount_row("Total", "277.90"), amount_row("Disc $.20 X5", "-0.90")],
        # Before service charge, tax and rounding (three steps).
        [
            amount_row("Total Amount :", "252.64"),
            amount_row("Serv Charge 10%", "9.56"),
            amount_row("GST @ 6%", "14.83"),
            amount_row("Rounding Adj :", "-0.03"),
        ],
    ],
)
def test_a_total_before_a_discount_or_charges_is_a_stage_not_a_rival(stages: list[Row]) -> None:
    tail = [*stages, amount_row("Total Inclusive GST:", "277.00"), amount_row("CASH", "277.00")]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "277.00"
    assert "ambiguous_total" not in codes(result)
    assert result.route == "submit", result.reasons
    # A discount that does not bring it to the total paid leaves it a rival.
    off = [amount_row("Total", "277.90"), amount_row("Discount:", "0.80")]
    result = extract_claim([receipt(*off, *tail[len(stages) :])], today=TODAY)
    assert "ambiguous_total" in codes(result)


def test_rounded_total_confirmed_by_the_payment_is_submitted() -> None:
    # Issue 11: the rounded total is what was paid; CASH - CHANGE and the final TOTAL
    # line confirm it, so it goes to NCB (it used to wait as `rounding_adjusted`).
    tail = [
        amount_row("TOTAL", "50.02"),
        amount_row("ROUNDING ADJ", "-0.02"),
        amount_row("TOTAL ROUNDED", "50.00"),
        amount_row("CASH", "100.00"),
        amount_row("CHANGE", "50.00"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "50.00"
    assert "rounding_adjusted" not in codes(result)
    assert result.route == "submit", result.reasons


def test_a_rounded_total_the_payment_shows_is_paid_though_not_printed() -> None:
    # "Total 12.37", "Rounding -0.02", cash 50.00, change 37.65: 12.35 was paid.
    tail = [
        amount_row("TOTAL", "12.37"),
        amount_row("ROUNDING ADJ", "-0.02"),
        amount_row("CASH", "50.00"),
        amount_row("CHANGE", "37.65"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "12.35"
    assert result.route == "submit", result.reasons
    # Off the 5-sen grid it is no cash rounding but a misread ("Cash 10.03" for 10.00).
    tail = [
        amount_row("TOTAL", "5.00"),
        amount_row("ROUNDING ADJ", "0.03"),
        amount_row("TOTAL AFTER ROUNDING", "5.00"),
        amount_row("CASH", "10.03"),
        amount_row("CHANGE", "5.00"),
    ]
    result = extract_claim([receipt(*tail)], today=TODAY)
    assert result.fields["total_amount"] == "5.00"
    assert result.route == "review"


def test_labelled_sale_date_beats_card_expiry_and_conflicts_lower_confidence() -> None:
    header = [*HEADER[:10], "Card Expiry: 30/09/20", *HEADER[10:]]
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.fields["service_date"] == "2018-12-25"

    rival = [*HEADER[:10], "Printed 26/12/2018 08:00:01", *HEADER[10:]]
    unsure = extract_claim([receipt(*CLEAN_TAIL, header=rival)], today=TODAY)
    assert unsure.field_confidence["service_date"] < result.field_confidence["service_date"]


def test_threshold_controls_routing() -> None:
    # A total corroborated by the payment (TOTAL = CASH), short of certain.
    paid = [receipt(amount_row("TOTAL", "50.00"), amount_row("CASH", "50.00"))]
    confidence = extract_claim(paid, today=TODAY).confidence
    assert 0.5 < confidence < 1.0
    assert extract_claim(paid, today=TODAY, threshold=confidence + 1e-4).route == "review"
    assert extract_claim(paid, today=TODAY, threshold=0.5).route == "submit"
    # Issue 11: no threshold lets an uncorroborated total through.
    plain = [receipt(amount_row("TOTAL", "50.00"))]
    lenient = extract_claim(plain, today=TODAY, threshold=0.5)
    assert lenient.route == "review" and "total_unconfirmed" in codes(lenient)


def test_totals_on_a_second_page() -> None:
    first = page(*HEADER)
    second = page(*CLEAN_TAIL, "THANK YOU")
    result = extract_claim([first, second], today=TODAY)
    assert result.fields["total_amount"] == "50.00"
    assert result.fields["provider_name"] == "MEDIVIEW KLINIK SDN BHD"


def test_wrapped_provider_name_and_malay_date() -> None:
    header = [
        "LIAN CHI PU TIAN VEGETARIAN",
        "RESTAURANT SDN BHD",
        "(1095514-X)",
        "54, JALAN SS23/11,",
        "47400 PETALING JAYA, SELANGOR",
        "Tel: 03-7805 7889",
        "No. Resit: R-000123",
        "Tarikh: 3 Ogos 2018 12:17",
    ]
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.fields["provider_name"] == "LIAN CHI PU TIAN VEGETARIAN RESTAURANT SDN BHD"
    assert result.fields["provider_address"] == "54, JALAN SS23/11, 47400 PETALING JAYA, SELANGOR"
    assert result.fields["service_date"] == "2018-08-03"
    assert result.fields["invoice_number"] == "R-000123"


def test_malay_receipt_header_names_the_provider_and_invoice() -> None:
    header: list[Row] = [
        "Pusat Perubatan Ar-Rahman",
        "No. 184, Jalan Tun Razak",
        "Taman Sri Muda",
        "30450 Ipoh, Perak",
        "INVOIS",
        "No. Invois: INV-2021-99261",
        "Tarikh: 24-Jan-2021",
        amount_row("Injection", "25.80"),
    ]
    result = extract_claim([receipt(amount_row("JUMLAH", "RM25.80"), header=header)], today=TODAY)
    assert result.fields["provider_name"] == "PUSAT PERUBATAN AR-RAHMAN"
    assert result.fields["invoice_number"] == "INV-2021-99261"
    assert result.fields["service_date"] == "2021-01-24"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # A legal suffix printed against the number before it is still one.
        (
            ["Zen and coffee 28S/B", "No 53, Jalan 3/62A,", "52200 Kuala Lumpur."],
            "ZEN AND COFFEE 28S/B",
        ),
        # "TAX" / "INVOICE" on two rows, a footer read at the top, a cashier line: not names.
        (["INVOICE", "TAX", "BHPetrol Subang Airport", "47200 Subang"], "BHPETROL SUBANG AIRPORT"),
        (
            ["GOODS SOLD ARE NOT RETURNABLE", "SLF CASH & CARRY", "40000 SHAH ALAM"],
            "SLF CASH & CARRY",
        ),
    ],
)
def test_rows_that_name_no_provider_are_passed_over(header: list[Row], expected: str) -> None:
    result = extract_claim(
        [receipt(*CLEAN_TAIL, header=[*header, "Served By: Cashier"])], today=TODAY
    )
    assert result.fields["provider_name"] == expected


def _with_invoice_row(row: Row) -> list[Row]:
    return [*HEADER[:8], row, *HEADER[9:]]


def test_invoice_number_read_with_letter_o_for_zero_goes_to_review() -> None:
    # The issue: "1O0234" with an unsure O (0.6) was auto-submitted at 0.97.
    header = _with_invoice_row(Seg(20, "INV NO: 1O0234", weak="O", weak_conf=0.6, weak_from=8))
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)

    assert result.fields["invoice_number"] == "100234"
    assert result.route == "review"
    assert codes(result) == {"low_confidence_invoice_number"}
    (reason,) = result.reasons
    assert "1O0234" in reason.message and "100234" in reason.message
    assert result.field_confidence["invoice_number"] <= LOOKALIKE_CAP < 0.9  # capped: unsure O
    assert result.confidence < 0.9  # the claim's confidence says why it waits
    assert result.fields["total_amount"] == "50.00"  # the rest of the claim is untouched


def test_clearly_printed_look_alike_in_a_digit_run_is_corrected_and_submitted() -> None:
    header = _with_invoice_row(Seg(20, "INV NO: 1O0234", weak="O", weak_conf=0.99, weak_from=8))
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.fields["invoice_number"] == "100234"
    assert result.route == "submit", result.reasons


def test_unsure_digits_of_a_clean_invoice_number_go_to_review() -> None:
    header = _with_invoice_row(Seg(20, "Invoice No: INV-20180012", weak="0012", weak_conf=0.5))
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.fields["invoice_number"] == "INV-20180012"
    assert result.route == "review"
    assert "low_confidence_invoice_number" in codes(result)


def test_an_unsure_invoice_number_does_not_hide_the_other_reasons() -> None:
    header = _with_invoice_row(Seg(20, "INV NO: 1O0234", weak="O", weak_conf=0.6, weak_from=8))
    tail = [amount_row("TOTAL", "50.00", weak="50", weak_conf=0.4)]
    result = extract_claim([receipt(*tail, header=header)], today=TODAY)
    assert {"low_confidence_total", "low_confidence_invoice_number"} <= codes(result)


@pytest.mark.parametrize(
    ("address_rows", "expected"),
    [
        # A lot number as long as a postcode is not the postcode: the rows after it stay.
        (
            ["LOT 37636,JALAN 6/37A,", "TAMAN BUKIT MALURI,", "52100 KUALA LUMPUR"],
            "LOT 37636,JALAN 6/37A, TAMAN BUKIT MALURI, 52100 KUALA LUMPUR",
        ),
        (
            ["PT17920, SEKSYEN U9,", "40150 SHAH ALAM,", "SELANGOR DARUL EHSAN."],
            "PT17920, SEKSYEN U9, 40150 SHAH ALAM, SELANGOR DARUL EHSAN.",
        ),
        # A town between the postcode and the state belongs to the address.
        (
            ["NO.17, 18 & 41, JALAN BESAR,", "39100 BRINCHANG,", "CAMERON HIGHLANDS,", "PAHANG"],
            "NO.17, 18 & 41, JALAN BESAR, 39100 BRINCHANG, CAMERON HIGHLANDS, PAHANG",
        ),
        # ... but not a line that merely follows the postcode.
        (
            ["NO 8, JALAN 7/118B,", "56000 KUALA LUMPUR", "AMPANG POINT", "Cashier: 01"],
            "NO 8, JALAN 7/118B, 56000 KUALA LUMPUR",
        ),
        # A chain's outlet (store number and branch) under the head office's state is kept,
        # and "P.T. 33198" is a lot number, not the postcode.
        (
            [
                "LOT P.T. 33198, BATU 4",
                "JALAN KAPAR, MUKIM KAPAR",
                "42100 KLANG, SELANGOR",
                "1320-TMN BATU",
            ],
            "LOT P.T. 33198, BATU 4 JALAN KAPAR, MUKIM KAPAR 42100 KLANG, SELANGOR 1320-TMN BATU",
        ),
        # ... but not a mall's name there, nor a store number with no state before it.
        (
            ["NO 8, JALAN 7/118B,", "56000 KUALA LUMPUR, MALAYSIA", "101 MALL"],
            "NO 8, JALAN 7/118B, 56000 KUALA LUMPUR, MALAYSIA",
        ),
        (
            ["NO 8, JALAN 7/118B,", "68000 AMPANG", "1320-TMN BATU"],
            "NO 8, JALAN 7/118B, 68000 AMPANG",
        ),
    ],
)
def test_address_runs_to_the_postcode_and_the_state(address_rows: list[str], expected: str) -> None:
    header: list[Row] = [
        "FUN N CHEER SDN BHD",
        *address_rows,
        "Tel: 03-6261 2536",
        "Invoice No: INV-20180012",
        "Date: 25/12/2018 10:31:02",
    ]
    result = extract_claim([receipt(*CLEAN_TAIL, header=header)], today=TODAY)
    assert result.fields["provider_address"] == expected
