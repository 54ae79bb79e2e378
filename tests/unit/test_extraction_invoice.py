"""Invoice numbers: look-alike letters settled from the number's pattern, and confidence."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.extraction.confidence import LOOKALIKE_CAP, LOOKALIKE_SURE, lookalike_adjusted
from services.extraction.invoice import (
    FOUND,
    LOOKALIKES,
    InvoiceResult,
    Settled,
    extract_invoice_number,
    settle_lookalikes,
)
from services.extraction.layout import build_rows
from services.ocr.result import PageText, TextLine

# The letters OCR reads for each digit.
LETTERS_FOR = {d: "".join(k for k, v in LOOKALIKES.items() if v == d) for d in "01258"}


def read(text: str, confs: Sequence[float] | None = None) -> InvoiceResult:
    """extract_invoice_number on one OCR line ``text`` with these character confidences."""
    char_confs = tuple(confs) if confs is not None else (0.995,) * len(text)
    box = ((20.0, 20.0), (20.0 + 10 * len(text), 20.0), (20.0 + 10 * len(text), 40.0), (20.0, 40.0))
    line = TextLine(text, box, min(char_confs), char_confs)
    return extract_invoice_number(build_rows([PageText(600, 400, (line,))]))


def weak_at(text: str, offset: int, conf: float) -> list[float]:
    confs = [0.995] * len(text)
    confs[offset] = conf
    return confs


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1O0234", "100234"),
        ("0O12", "0012"),
        ("INV-1O234", "INV-10234"),
        ("2018I2S7", "20181257"),
        ("12lZ34", "121234"),  # a run of two look-alikes between digits
        ("4B8", "488"),
        ("CS0O012727", "CS00012727"),  # the prefix stays, the digit part is corrected
        ("SO0O022185", "SO00022185"),
    ],
)
def test_look_alike_letters_inside_digit_runs_are_read_as_digits(value: str, expected: str) -> None:
    settled = settle_lookalikes(value)
    assert settled.text == expected
    assert settled.corrected
    assert all(value[i] != expected[i] for i in settled.corrected)


@pytest.mark.parametrize(
    "value",
    [
        "INV-20180012",
        "INV20180012",
        "CS-00012727",
        "CS00012727",
        "OR18030502160349",
        "OR-094767",
        "POS01/00012379",
        "BAT02201803120255",
        "LCS03908",
        "18287/102/T0049",
        "HP01-188357",
        "Inv-2021-99261",
        "12OX34",  # a run with a letter that looks like no digit is a word
    ],
)
def test_words_and_prefixes_are_not_corrected(value: str) -> None:
    settled = settle_lookalikes(value)
    assert settled.text == value
    assert settled.corrected == () and settled.ambiguous == ()


@pytest.mark.parametrize(
    ("value", "ambiguous"),
    [
        ("SO-12345", "SO"),  # a prefix made only of look-alikes
        ("B/2023/30399", "B"),  # a letter with no digit neighbours
        ("SO00022185", "SO"),  # look-alikes glued to the front of the digits
        ("O01234", "O"),
        ("12345S", "S"),
        ("1OOO2", "OOO"),  # too long a run to be misreads
    ],
)
def test_undecidable_look_alikes_are_left_as_read(value: str, ambiguous: str) -> None:
    settled = settle_lookalikes(value)
    assert settled.text == value
    assert settled.corrected == ()
    assert "".join(value[i] for i in settled.ambiguous) == ambiguous


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Invoice No: INV-20180012", "INV-20180012"),
        ("Bill No: CS-00012727", "CS-00012727"),
        ("Invoice: INV0123", "INV0123"),
        ("Receipt No: OR18030502160349", "OR18030502160349"),
        ("Receipt: OR-094767", "OR-094767"),
        ("No. Resit: R-000123", "R-000123"),
        ("Doc No: 18287/102/T0049", "18287/102/T0049"),
        ("Cash Bill No: POS01/00012379", "POS01/00012379"),
    ],
)
def test_clean_invoice_numbers_keep_their_value_and_confidence(line: str, expected: str) -> None:
    result = read(line)
    assert result.value == expected
    assert result.confidence == FOUND >= 0.9
    assert not result.corrected and not result.ambiguous


def test_the_issue_case_is_corrected_and_capped() -> None:
    text = "INV NO: 1O0234"
    result = read(text, weak_at(text, text.index("1O") + 1, 0.6))
    assert (result.value, result.as_read, result.corrected) == ("100234", "1O0234", True)
    assert result.confidence < LOOKALIKE_CAP


@pytest.mark.parametrize(("conf", "capped"), [(0.6, True), (0.89, True), (0.95, False)])
def test_corrected_letters_cap_confidence_unless_clearly_recognised(
    conf: float, capped: bool
) -> None:
    text = "Invoice No: 1O0234"
    result = read(text, weak_at(text, text.index("1O") + 1, conf))
    assert result.value == "100234"
    assert (result.confidence <= LOOKALIKE_CAP) is capped
    if not capped:
        assert result.confidence >= 0.9


def test_ambiguous_look_alikes_lower_confidence() -> None:
    sure = read("Invoice No: SO-12345")
    assert sure.value == "SO-12345" and sure.ambiguous
    assert 0.9 <= sure.confidence < FOUND  # lowered, but a clear print still submits
    text = "Invoice No: SO-12345"
    unsure = read(text, weak_at(text, text.index("SO"), 0.7))
    assert unsure.confidence <= LOOKALIKE_CAP


@pytest.mark.parametrize(("conf", "sure"), [(0.54, True), (0.8, True), (0.45, False)])
def test_a_word_settles_an_unsure_look_alike_letter(conf: float, sure: bool) -> None:
    # PP-OCR hesitates over the O of "OR-" (0.54-0.87 on clean prints): the word "OR"
    # rules out its only likely competitor, the digit 0.
    text = "Receipt No: OR-095474"
    result = read(text, weak_at(text, text.index("OR-"), conf))
    assert result.value == "OR-095474"
    assert settle_lookalikes("OR-095474").in_words == (0,)
    assert (result.confidence == FOUND) is sure
    if not sure:
        assert result.confidence < 0.9


def test_a_digit_read_for_a_letter_of_a_word_keeps_its_doubt() -> None:
    # The reverse misread ("0R-" for "OR-") is not corrected, and an unsure 0 keeps the
    # number under the threshold: such a number is wrong and must not be submitted.
    text = "Receipt No: 0R-094767"
    result = read(text, weak_at(text, text.index("0R-"), 0.71))
    assert result.value == "0R-094767"
    assert result.confidence < 0.9


def test_confidence_follows_the_weakest_character() -> None:
    text = "Invoice No: INV-20180012"
    confidences = [read(text, weak_at(text, len(text) - 1, c)).confidence for c in (0.4, 0.7, 0.95)]
    assert confidences == sorted(confidences)
    assert confidences[0] < 0.3
    # Weak characters of the label do not count against the number.
    assert read(text, weak_at(text, 0, 0.4)).confidence == FOUND


def test_no_label_no_number() -> None:
    result = read("THANK YOU 12345")
    assert result == InvoiceResult(None, 0.0)


def test_lookalike_adjusted_rule() -> None:
    assert lookalike_adjusted(0.97, []) == 0.97
    assert 0.9 < lookalike_adjusted(0.97, [LOOKALIKE_SURE]) < 0.97
    assert lookalike_adjusted(0.97, [0.99, LOOKALIKE_SURE - 0.01]) == LOOKALIKE_CAP
    assert lookalike_adjusted(0.5, [0.2]) < 0.5  # the cap never raises a confidence


# --- properties over random digit strings -------------------------------------------------

digit_strings = st.text(alphabet="0123456789", min_size=3, max_size=16)


@st.composite
def one_digit_swapped(draw: st.DrawFn) -> tuple[str, str, int]:
    """A digit string and the same string with one interior digit read as a look-alike."""
    digits = draw(digit_strings.filter(lambda d: any(c in LETTERS_FOR for c in d[1:-1])))
    i = draw(st.sampled_from([i for i in range(1, len(digits) - 1) if digits[i] in LETTERS_FOR]))
    letter = draw(st.sampled_from(LETTERS_FOR[digits[i]]))
    return digits, digits[:i] + letter + digits[i + 1 :], i


prefixes = st.sampled_from(["", "INV-", "INV", "CS", "CS-", "OR", "OR-", "R", "T652-", "POS01/"])


@given(one_digit_swapped(), prefixes)
def test_one_look_alike_in_a_digit_run_is_corrected(
    case: tuple[str, str, int], prefix: str
) -> None:
    digits, misread, i = case
    settled = settle_lookalikes(prefix + misread)
    assert settled.text == prefix + digits
    assert settled.corrected == (len(prefix) + i,)
    assert settled.ambiguous == ()


@given(digit_strings, prefixes)
def test_digit_strings_are_left_alone(digits: str, prefix: str) -> None:
    settled = settle_lookalikes(prefix + digits)
    assert (settled.text, settled.corrected, settled.ambiguous) == (prefix + digits, (), ())
    assert settled == Settled(prefix + digits, (), (), settled.in_words)


@given(one_digit_swapped(), st.floats(min_value=0.3, max_value=1.0))
def test_corrected_numbers_submit_only_when_the_letter_was_clear(
    case: tuple[str, str, int], conf: float
) -> None:
    digits, misread, i = case
    text = "Invoice No: " + misread
    offset = len("Invoice No: ") + i
    result = read(text, weak_at(text, offset, conf))
    assert result.value == digits
    if conf < LOOKALIKE_SURE:
        assert result.confidence <= LOOKALIKE_CAP
    assert result.confidence <= read("Invoice No: " + digits).confidence


@given(one_digit_swapped())
def test_look_alikes_at_either_end_are_left_as_read(case: tuple[str, str, int]) -> None:
    digits, _, _ = case
    for d, at in ((digits[0], 0), (digits[-1], len(digits) - 1)):
        if d not in LETTERS_FOR:
            continue
        misread = digits[:at] + LETTERS_FOR[d][0] + digits[at + 1 :]
        settled = settle_lookalikes(misread)
        assert settled.text == misread
        assert at in settled.ambiguous
