"""Field evidence: which OCR line each extracted value came from, in page-image pixels.

A reviewer is shown the page as ``services.ocr.pages`` produced it with each field's
polygon drawn on it, so the polygon must be the source line's box, on the right page,
in that image's pixels even when the engine turned the page before reading it.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.extraction import ClaimExtraction, Reason, extract_claim
from services.extraction.evidence import FieldEvidence, locate
from services.extraction.layout import Span, build_rows
from services.ocr.result import PageText, TextLine
from services.recognition import apply_claim_rules
from tests.unit.test_extraction import CLEAN_TAIL, TODAY, amount_row, page, receipt

Box = tuple[tuple[float, float], ...]


def _line_box(pages: list[PageText], text: str) -> Box:
    (line,) = [ln for p in pages for ln in p.lines if ln.text == text]
    return line.box


def test_each_field_points_at_the_line_its_value_was_read_from() -> None:
    pages = [receipt(*CLEAN_TAIL)]
    result = extract_claim(pages, today=TODAY)

    evidence = result.field_evidence
    # Currency is defaulted or read from the text as a whole: no single source line.
    assert set(evidence) == {name for name, v in result.fields.items() if v} - {"currency"}
    total = evidence["total_amount"]
    assert (total.page, total.text) == (1, "RM 50.00")
    assert total.polygon == _line_box(pages, "RM 50.00")
    assert (total.page_width, total.page_height) == (pages[0].width, pages[0].height)
    assert evidence["tax_amount"].polygon == _line_box(pages, "2.83")
    assert evidence["service_date"].text == "Date: 25/12/2018 10:31:02"
    assert evidence["invoice_number"].text == "Invoice No: INV-20180012"
    assert evidence["provider_name"].polygon == _line_box(pages, "MEDIVIEW KLINIK SDN BHD")


def test_a_value_over_several_lines_gets_their_bounding_box_and_every_line() -> None:
    pages = [receipt(*CLEAN_TAIL)]
    address = extract_claim(pages, today=TODAY).field_evidence["provider_address"]

    texts = ["NO 12, JALAN MERANTI 2,", "TAMAN MERANTI,", "47400 PETALING JAYA, SELANGOR"]
    assert address.text == "\n".join(texts)
    corners = [pt for text in texts for pt in _line_box(pages, text)]
    left, top = min(x for x, _ in corners), min(y for _, y in corners)
    right, bottom = max(x for x, _ in corners), max(y for _, y in corners)
    assert address.polygon == ((left, top), (right, top), (right, bottom), (left, bottom))


def test_fields_without_a_value_or_a_single_source_have_no_evidence() -> None:
    # No TOTAL label: the total is CASH - CHANGE, computed from two printed amounts.
    tail = [amount_row("CASH", "100.00"), amount_row("CHANGE", "50.00")]
    result = extract_claim([receipt(*tail)], today=TODAY)

    assert result.fields["total_amount"] == "50.00"
    assert result.fields["tax_amount"] is None
    assert "total_amount" not in result.field_evidence
    assert "tax_amount" not in result.field_evidence
    assert "currency" not in result.field_evidence


def test_a_total_on_the_second_page_names_that_page_and_its_size() -> None:
    first = receipt(amount_row("CONSULTATION", "30.00"))
    second = page(amount_row("TOTAL", "30.00"), "THANK YOU", width=800)
    result = extract_claim([first, second], today=TODAY)

    total = result.field_evidence["total_amount"]
    assert total.page == 2
    assert (total.page_width, total.page_height) == (800, second.height)
    assert total.polygon == _line_box([second], "30.00")


def test_evidence_does_not_change_what_is_extracted() -> None:
    """Rows carry their lines only for evidence: equality and values ignore them."""
    pages = [receipt(*CLEAN_TAIL)]
    rows = build_rows(pages)
    bare = [type(r)(**{**vars(r), "lines": ()}) for r in rows]
    assert bare == rows
    assert extract_claim(pages, today=TODAY).fields["total_amount"] == "50.00"


def test_evidence_json_is_the_stored_shape() -> None:
    evidence = FieldEvidence(2, ((1.0, 2.25), (10.0, 2.0), (10.0, 8.0), (1.0, 8.0)), "T", 60, 80)
    assert evidence.as_json() == {
        "page": 2,
        "polygon": [[1, 2.2], [10, 2], [10, 8], [1, 8]],
        "text": "T",
        "page_width": 60,
        "page_height": 80,
    }


def test_claim_rules_keep_the_evidence() -> None:
    result = extract_claim([receipt(*CLEAN_TAIL)], today=TODAY)
    routed = apply_claim_rules(result, policy_number=None)

    assert routed.route == "review"
    assert routed.field_evidence == result.field_evidence
    assert routed.evidence_json()["total_amount"]["page"] == 1


def test_an_extraction_with_no_text_has_no_evidence() -> None:
    result = extract_claim([PageText(600, 800, ())], today=TODAY)
    assert result.field_evidence == {}
    empty = ClaimExtraction({}, {}, 0.0, "review", [Reason("x", "y")])
    assert empty.evidence_json() == {}


# -- pages the engine turned before reading --------------------------------------------


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_points_on_a_turned_page_map_back_onto_the_page_handed_in(turns: int) -> None:
    """The same quarter turns the ONNX engine gives (np.rot90 k=-1 each) are undone."""
    height, width = 30, 50
    handed_in = np.zeros((height, width), dtype=np.uint8)
    x, y = 7, 19
    handed_in[y, x] = 1
    turned = np.rot90(handed_in, k=-turns)
    (ty,), (tx,) = np.nonzero(turned)
    page = PageText(turned.shape[1], turned.shape[0], (), turns)

    assert page.input_size == (width, height)
    # Pixel centres, so the continuous mapping is checked exactly.
    assert page.to_input((tx + 0.5, ty + 0.5)) == pytest.approx((x + 0.5, y + 0.5))


def test_evidence_on_a_turned_page_is_in_the_handed_in_page_pixels() -> None:
    """A page turned once clockwise: the box is mapped back and the size swapped."""
    box = ((100.0, 40.0), (160.0, 40.0), (160.0, 60.0), (100.0, 60.0))
    line = TextLine("12.50", box, 0.99, (0.99,) * 5)
    turned = PageText(400, 300, (line,), turns=1)
    (row,) = build_rows([turned])

    evidence = locate([Span.whole(row)], [turned])

    assert evidence is not None
    # Handed in 300 wide and 400 tall; turned (x, y) came from (y, 400 - x).
    assert (evidence.page_width, evidence.page_height) == (300, 400)
    assert evidence.polygon == ((40.0, 300.0), (40.0, 240.0), (60.0, 240.0), (60.0, 300.0))
