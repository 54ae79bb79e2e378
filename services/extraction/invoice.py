"""Invoice / receipt number: the number that identifies the document.

NCB files a claim under it, so a wrong number submitted unseen files the claim against
another document; a missing one sends the claim to a person. Both are avoided by reading
the number where the receipt prints it, and proposing (for review) what is only a guess.

Finding it. Every row is scanned for document-number label words, compared up to the
glyphs OCR swaps inside words (``Bi11``, ``BJ1L`` for ``BILL``) and forgiving one more
slip in a long word (``Recelpt``, ``INVDICE``). A label offers the token after it, past
``NO``, ``#``, ``:`` (``Doc No. : CS00031663``, ``TAXINV:002-1550040``, ``RCPT
NO.18252``). A short prefix printed apart from its digits (``CS 67832``) and parts
printed apart at a dash (``V001- 515592``) are joined. When nothing, a date or only a
small boxed number follows the label and its marker, the number is the first token to
the right of the label in the row just above or below (its line printed a little
higher or lower), else the first token of the row below (or of the row above when that
row starts with the colon). Dates, times, amounts, tokens with fewer than three digits
and shapes no printer makes (``2013u2281``, ``C.-170891``) are never numbers, and a
label right after a word naming another number (``GST REF NO``, ``CUSTOMER REF``) is
another number's label. Labels come in tiers; the best tier wins, then the more
specific label, then the first row:

1. the document's own number: invoice, receipt, bill, cash bill, document, slip, cash
   sales / sales number, credit note;
2. a transaction or guest check number;
3. a bare ``NO.:`` heading a letter-prefixed number (``No.: CS-20242``), with no word
   before it on the row (``GST NO``, ``TABLE NO`` and addresses are not it);
4. no label: a letter- or ``#``-framed number at either end of the row that prints the
   date (``12-01-19 21:13 SH01 T4 R000027830``, ``20/04/2018 19:15 #1000000163``), or
   one alone on its row and printed twice (again under its barcode);
5. an order number (``Order :6224``): a counter or restaurant's own number for the sale
   when it prints no other, but the lesser one beside a framed number (``OrderNo#1106368
   06/07/16`` above ``06/07/16 13:54 #001-1105624#``);
6. a reference number: on a card slip the reference is the bank's.

Tiers 4 and 5 start no higher than ``PLACED``: the calibration (``calibration.json``,
fitted on the labelled shared receipts) says how often a number found by its place alone,
or under an order label, is right. Tier 6 is a guess a person should confirm: its
confidence stays under the submit threshold (``GUESSED``), calibrated or not.

Reading it. OCR confuses letters and digits that look alike (O/0, I/1, l/1, S/5, B/8,
Z/2) in invoice numbers as much as in amounts, and one wrong character files the claim
under another document. The number's own pattern settles such a letter where that is
safe (:func:`settle_lookalikes`):

- The value is split into segments at ``/`` and ``-``, and each segment into runs of
  letters and runs of digits.
- A letter run holding any letter that is not a look-alike (``INV``, ``CS``, ``OR``,
  ``POS``) is a word: its letters stay letters, look-alikes included. The word also
  settles the recognizer's hesitation over such a letter (see ``WORD_LOOKALIKE_FLOOR``).
- A run of one or two look-alike letters with digits on both sides in its segment
  (``1O0234``, ``0O12``, the ``O`` of ``INV-1O234``) sits in a run that is otherwise
  digits: each letter is read as the digit it resembles. Only this digit part of a
  mixed token is ever corrected.
- One look-alike letter closing a run of three or more digits before a separator
  (``1802B/103/T0269``) is the digit too: numbers put their letters first, and a check
  letter only at the very end of the number.
- Any other run made only of look-alikes is ambiguous and left as read: a whole
  segment (``SO`` in ``SO-12345``, ``B`` in ``B/2023/30399``), a run at either end of a
  segment (``SO00022185``, ``1234S`` at the end of the number: prefix, check letter or
  misread digit?) or a longer run between digits.

Corrected and ambiguous characters are then scored by
:func:`services.extraction.confidence.lookalike_adjusted`: recognised below 0.9, the
number is capped under the submit threshold and the claim goes to a person.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from services.extraction.confidence import lookalike_adjusted, lookalike_cap, ocr_factor
from services.extraction.layout import Row, Span

# How surely a labelled token is the document number: the label found it, not the page's
# arithmetic, so it stays below a clean amount's evidence but clears the submit threshold.
FOUND = 0.97
# Ceiling for a number found by a reference label: often another document's number (the
# bank's reference on a card slip), so a person confirms it before NCB files the claim
# under it, whatever the calibration says.
GUESSED = 0.75
# Raw ceiling for a number found by its place alone (beside the date, printed twice) or
# by an order label: the calibration decides how far that is trusted, from how often such
# numbers were right.
PLACED = 0.85
# Letters OCR reads for the digit they resemble.
LOOKALIKES = {
    "O": "0",
    "o": "0",
    "I": "1",
    "l": "1",
    "S": "5",
    "s": "5",
    "B": "8",
    "Z": "2",
    "z": "2",
}
# Split a number into segments; never a source of doubt about its identity.
SEPARATORS = frozenset("/-")
# A longer run of look-alike letters between digits is more likely a real code than misreads.
_MAX_CORRECTED_RUN = 2
# Digits before a lone look-alike letter that ends a segment, for it to be read as a digit.
_MIN_DIGITS_BEFORE_CLOSING = 3
# A look-alike letter inside a word (the O of "OR-095474") read at least this surely is
# taken as read. Real OCR hesitates over exactly these letters (PP-OCR reads the O of
# "OR-" at 0.54-0.87 on clean generated receipts, the rest of the number at 0.99+), and
# its usual competitor is the look-alike digit, which the word rules out: with the recognizer
# and the pattern agreeing, the hesitation is not doubt about the value. Below even odds
# the letter counts as read, like any other character.
WORD_LOOKALIKE_FLOOR = 0.5


@dataclass(frozen=True)
class _Label:
    """A document-number label: its spellings, its tier, and whether it needs a marker."""

    words: tuple[str, ...]
    tier: int  # 1 best (the document's own number) .. 6 (a reference number)
    marker: bool = False  # only counts when NO, # or : follows (short or common words)


# In order of preference within a tier. Tier 3 (bare NO) and 4 (unlabelled) are rules below.
_LABELS = (
    _Label(("INVOICE", "INVOIS", "INV", "TAXINV", "INVNO"), 1),
    _Label(("RECEIPT", "RESIT", "RCPT", "RECPT"), 1),
    _Label(("RN",), 1, marker=True),
    _Label(("BILL", "BIL"), 1),
    _Label(("CB",), 1, marker=True),
    _Label(("DOC", "DOCUMENT", "DOCNO"), 1),
    _Label(("SLIP",), 1),
    _Label(("SALES",), 1, marker=True),
    _Label(("CN",), 1, marker=True),  # C/N: credit note
    _Label(("TRANS", "TRANSACTION", "TRN", "TRX", "TXN"), 2),
    _Label(("CHK", "CHECK"), 2),
    _Label(("ORDER", "ORD", "ORDERNO"), 5),
    _Label(("REF", "REFERENCE"), 6, marker=True),
)
_TIER_BARE_NO = 3
_TIER_UNLABELLED = 4
_TIER_ORDER = 5  # found by an order label: at most PLACED, like an unlabelled number
_TIER_GUESSED = 6  # a reference number: capped at GUESSED
# A word before a label that makes it another number's label (GST REF NO, MEMBER NO).
_OTHER_NUMBERS = frozenset(
    {"GST", "SST", "REG", "REGISTRATION", "COMPANY", "CO", "ROC", "BR", "BRN", "ID",
     "MEMBER", "CARD", "TABLE", "ACCOUNT", "ACC", "MOBILE", "PHONE", "TEL", "CUSTOMER",
     "VEHICLE", "PAX", "TOKEN", "TICKET", "RESERVATION", "AUTH", "APPROVAL", "SURVEY",
     "MERCHANT", "BATCH", "TRACE", "PO", "DO", "QUOTATION", "QUOTE"}
)  # fmt: skip
# Lines of one print differ less than this in height (stamps and headings differ more).
_SAME_PRINT = 1.6
# Words that follow a label and say "number" ("Invoice No.", "Receipt Number").
_NUMBER_WORDS = ("NO", "NUMBER", "NUM", "NBR", "NOMBOR")
# A short token that is a word of the row, never a prefix of the number after it.
_NOT_PREFIX = frozenset({"DT", "TO", "AT", "ON", "OF", "RM", "NO", "BY", "IS", "DATE", "TIME"})

_WORD = re.compile(r"[A-Z](?:[A-Z01]|/[A-Z](?![A-Z]))*")
# Glyphs OCR swaps inside words: compared as one.
_SKELETON = str.maketrans({"1": "I", "L": "I", "J": "I", "0": "O", "D": "O", "Q": "O"})
_GAP = re.compile(r"[\s.,\-]*")
_PUNCT = re.compile(r"(?:\s*/\s*DATE\b)?[\s#:：.,\-]*")
_VALUE = re.compile(r"\[?([A-Z0-9][A-Z0-9/_.\-]*)")
_DATE = re.compile(r"\d{1,4}[/.\-]\d{1,2}[/.\-]\w{1,4}|\d{1,2}[/.\-][A-Z]{3}[/.\-]\d{2,4}")
_DATE_OR_TIME = re.compile(r"\d{1,4}[/.\-]\d{1,2}[/.\-]\d{2}|\d{1,2}:\d{2}")
_TIME = re.compile(r"\d{1,2}[:.]\d{2}([:.]\d{2})?([AP]M)?")
_AMOUNT = re.compile(r"(RM)?\d{1,3}(,\d{3})*[.,]\d{2}")
_DATE_IN_ROW = re.compile(r"(?<![\d/])(\d{1,2}[/\-.]\d{1,2}[/\-.]\d{2,4})(?![\d/])")
_FRAMED = re.compile(r"#?(?:[A-Z]{1,3}\d{6,}|\d{3}-\d{6,})#?|#\d{6,}#?")


@dataclass(frozen=True)
class Settled:
    """A value after its look-alike letters were settled from its pattern."""

    text: str
    corrected: tuple[int, ...]  # offsets read as the digit they resemble
    ambiguous: tuple[int, ...]  # offsets of look-alike letters left as read, undecided
    in_words: tuple[int, ...] = ()  # offsets of look-alike letters that a word confirms


@dataclass(frozen=True)
class InvoiceResult:
    """The invoice number, how sure we are of it, and what the pattern did to it."""

    value: str | None
    confidence: float
    as_read: str | None = None  # the token as recognised, before look-alikes were settled
    corrected: bool = False  # some letter was read as the digit it resembles
    ambiguous: bool = False  # some look-alike letter could be either and was left as read
    source: Span | None = None  # where the number is printed
    # The most its calibrated confidence may show: GUESSED for an order or reference
    # number, LOOKALIKE_CAP for an unsurely read look-alike letter, else 1.0.
    cap: float = 1.0


@dataclass(frozen=True)
class _Candidate:
    tier: int
    rank: int  # preference inside the tier (label order)
    row_index: int
    value: str  # as printed, spaces removed
    confs: tuple[float, ...]
    source: Span


def settle_lookalikes(value: str) -> Settled:
    """Read look-alike letters inside digit runs as digits; leave words and doubt alone.

    See the module docstring for the rule; offsets index ``value``.
    """
    chars = list(value)
    corrected: list[int] = []
    ambiguous: list[int] = []
    in_words: list[int] = []
    for seg in re.finditer(r"[^/-]+", value):
        text = seg.group()
        for run in re.finditer(r"[A-Za-z]+", text):
            letters = run.group()
            offsets = range(seg.start() + run.start(), seg.start() + run.end())
            if not all(ch in LOOKALIKES for ch in letters):
                # A word such as INV, CS, OR: letters stay letters.
                in_words.extend(i for i in offsets if value[i] in LOOKALIKES)
                continue
            # Segments hold only letters and digits, so a maximal letter run that neither
            # starts nor ends its segment has a digit on each side.
            between_digits = run.start() > 0 and run.end() < len(text)
            # One letter closing a run of digits before a separator (1802B/103): numbers
            # put letters first (CS, T0049), and a check letter only at the very end.
            closes_digits = (
                len(letters) == 1
                and run.end() == len(text)
                and seg.end() < len(value)
                and run.start() >= _MIN_DIGITS_BEFORE_CLOSING
                and text[: run.start()].isdigit()
            )
            if (between_digits and len(letters) <= _MAX_CORRECTED_RUN) or closes_digits:
                for i in offsets:
                    chars[i] = LOOKALIKES[chars[i]]
                corrected.extend(offsets)
            else:
                ambiguous.extend(offsets)
    return Settled("".join(chars), tuple(corrected), tuple(ambiguous), tuple(in_words))


def invoice_confidence(confs: Sequence[float], settled: Settled) -> float:
    """``FOUND`` x the recognition factor of every letter and digit, adjusted for
    look-alikes.

    Each doubted character is a chance of another document's number, so two digits read
    at 0.7 weigh more than one: the product of their ``ocr_factor``, not the weakest alone.
    On the labelled shared receipts (merchant-split, calibrated) this took recall at
    confidence >= 0.90 from 0.903 to 0.910 at precision 0.994: the misread numbers were
    those with more than one doubted character.

    Look-alike letters a word confirms count as sure from ``WORD_LOOKALIKE_FLOOR`` up.
    Separators (``-``, ``/``) carry no doubt: the pattern admits nothing else there, and
    their thin glyphs are where the recognizer hesitates most over a clean print (a ``-``
    read at 0.87 beside digits at 1.00 when pages of another receipt share the batch).
    """
    confirmed = set(settled.in_words)
    carried = [
        1.0 if i in confirmed and c >= WORD_LOOKALIKE_FLOOR else c
        for i, c in enumerate(confs)
        if i >= len(settled.text) or settled.text[i] not in SEPARATORS
    ]
    if not carried:
        return 0.0
    confidence = FOUND * math.prod(ocr_factor(c) for c in carried)
    doubtful = [confs[i] for i in (*settled.corrected, *settled.ambiguous)]
    return round(lookalike_adjusted(confidence, doubtful), 4)


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


@lru_cache(maxsize=256)
def _skeleton(word: str) -> str:
    """``word`` with the glyphs OCR swaps inside words made one (Bi11, BJ1L and BILL)."""
    return word.translate(_SKELETON)


@lru_cache(maxsize=4096)
def _is_word(token: str, words: tuple[str, ...]) -> bool:
    """``token`` spells one of ``words`` up to look-alike glyphs, allowing one more OCR
    slip in words of 5+ letters (``Recelpt``, ``INVDICE``)."""
    shape = _skeleton(token)
    for w in words:
        target = _skeleton(w)
        if shape == target:
            return True
        near = len(w) >= 5 and abs(len(shape) - len(w)) <= 1
        if near and _edit_distance_at_most_one(shape, target):
            return True
    return False


@lru_cache(maxsize=4096)
def _label_of(word: str) -> tuple[int, int, bool] | None:
    """(tier, rank, ends with NO) of a label word (``INVOICENO`` too), or None."""
    word = word.replace("/", "")
    for spelled, glued in ((word, False), (word[:-2], True) if word.endswith("NO") else ("", True)):
        for rank, label in enumerate(_LABELS):
            if spelled and _is_word(spelled, label.words):
                return label.tier, rank, glued
    return None


def _words(upper: str) -> list[tuple[str, int, int]]:
    """Candidate label words of a row: letter runs, and letter runs with look-alike digits
    in them (``BI11``), each with its offsets."""
    out = []
    for m in _WORD.finditer(upper):
        out.append((m.group(), m.start(), m.end()))
        letters = re.match(r"[A-Z]+(?:/[A-Z](?![A-Z]))?", m.group())
        whole_is_label = _label_of(m.group()) is not None
        if letters is not None and letters.end() < len(m.group()) and not whole_is_label:
            out.append((letters.group(), m.start(), m.start() + letters.end()))
    return out


def _plain(text: str) -> bool:
    """Not a date, a time or an amount: something that could be a document number."""
    return not (
        _DATE.fullmatch(text)
        or _DATE_OR_TIME.match(text)
        or _TIME.fullmatch(text)
        or _AMOUNT.fullmatch(text)
    ) and bool(re.search(r"\d", text))


def _value_at(row: Row, upper: str, pos: int) -> tuple[str, list[int]] | None:
    """The number that starts at ``pos`` and the offsets of its characters, joined across
    spaces where a short prefix (``CS 67832``) or a dash or slash (``V001- 515592``)
    says it goes on."""
    m = _VALUE.match(upper, pos)
    if m is None:
        return None
    start, end = m.span(1)
    raw = upper[start:end]
    head = raw.rstrip("./_-")
    offsets = list(range(start, start + len(head)))
    chain = re.match(r"(?: *- *\d[A-Z0-9]*(?![A-Z0-9/.:]))+", upper[start + len(head) :])
    if chain is not None and " " in chain.group():
        # Printed apart at dashes: "V001- 515592", "18550 - 389 - 4768" (a spaced slash
        # starts another field: "00015047 / 10P01" is a bill number and its terminal).
        base = start + len(head)
        offsets += [base + i for i, ch in enumerate(chain.group()) if ch != " "]
        return "".join(row.text[i] for i in offsets), offsets
    nxt = re.match(r" +([A-Z0-9][A-Z0-9/_\-]*)", upper[end:])
    if nxt is not None:
        follow = nxt.group(1).rstrip("./_-")
        follow_start = end + nxt.start(1)
        prefix = (
            len(head) <= 3
            and head not in _NOT_PREFIX
            and follow[:1].isdigit()
            and len(follow) >= 4
            and sum(ch.isdigit() for ch in follow) >= 3
        )
        if prefix and _plain(follow):
            offsets += list(range(follow_start, follow_start + len(follow)))
    return "".join(row.text[i] for i in offsets), offsets


def _misread(value: str) -> bool:
    """A shape no printed number has: a lower-case letter that looks like no digit inside a
    digit run (``2013u2281``), or a dot against a separator (``C.-170891``). Such a
    token is a misreading that the pattern cannot settle; better no number than it."""
    lower_inside = re.search(r"\d[a-km-np-rt-y]\d", value)  # not o, l, s, z: look-alikes
    return bool(lower_inside or re.search(r"\.[/\-]|[/\-]\.", value))


def _upper(row: Row) -> str:
    upper = row.text.upper()
    return upper if len(upper) == len(row.text) else row.text


def _candidate(row: Row, pos: int, tier: int, rank: int) -> _Candidate | None:
    """The number at ``pos`` of ``row``, if it could be a document number."""
    found = _value_at(row, _upper(row), pos)
    if found is None:
        return None
    value, offsets = found
    digits = sum(ch.isdigit() for ch in settle_lookalikes(value).text)
    if digits < 3 or not _plain(value.upper()) or _misread(value):
        return None
    confs = tuple(row.confs[i] for i in offsets)
    return _Candidate(tier, rank, row.index, value, confs, Span(row, offsets[0], offsets[-1] + 1))


def _same_print(row: Row, a: int, b: int) -> bool:
    """Offsets ``a`` (a label's end) and ``b`` (a value's start) of ``row`` are printed
    alike: one OCR line, or lines of about one height. A label with no NO, # or : takes
    no value in another size (an ink stamp beside a TAX INVOICE heading)."""
    starts = [seg_start for seg_start, _, _ in row.segments]
    i, j = bisect_right(starts, a - 1) - 1, bisect_right(starts, b) - 1
    if i == j or not row.lines:
        return True
    small, large = sorted((row.lines[i].height, row.lines[j].height))
    return large <= _SAME_PRINT * max(small, 1.0)


def _near(row: Row, other: Row) -> bool:
    """``other`` is the printed row just above or below ``row``, not further."""
    gap = other.top - row.bottom if other.index > row.index else row.top - other.bottom
    return other.page == row.page and gap <= 1.5 * max(row.height, 1.0)


def _beside(
    rows: Sequence[Row], at: int, label_end: int, tier: int, rank: int
) -> _Candidate | None:
    """A number printed right of its label but read into the row above or below (the
    line sits a little higher or lower than its label)."""
    row = rows[at]
    x = row.x_at(label_end)
    for other in (rows[at - 1] if at else None, rows[at + 1] if at + 1 < len(rows) else None):
        if other is None or not _near(row, other):
            continue
        if abs((other.top + other.bottom - row.top - row.bottom) / 2) > max(row.height, 1.0):
            continue
        for seg_start, left, _ in other.segments:
            if left < x - 0.5 * max(row.height, 1.0):
                continue
            lead = re.match(r"[\s:：#]*", other.text[seg_start:])
            found = _candidate(other, seg_start + (lead.end() if lead else 0), tier, rank)
            if found is not None:
                return found
            break
    return None


def _below(rows: Sequence[Row], at: int, tier: int, rank: int) -> _Candidate | None:
    """The value of a label that ends its row: first token of the row below (or of the
    row above, when that row starts with the colon that the label is missing)."""
    row = rows[at]
    for other in (rows[at + 1] if at + 1 < len(rows) else None, rows[at - 1] if at else None):
        if other is None or not _near(row, other):
            continue
        text = other.text.lstrip()
        if other.index < row.index and not text.startswith((":", "：")):
            continue
        lead = re.match(r"\s*[:：]?\s*", other.text)
        found = _candidate(other, lead.end() if lead else 0, tier, rank)
        if found is not None:
            return found
    return None


def _label_at(upper: str, word: str, start: int, end: int) -> tuple[int, int, int, bool] | None:
    """(tier, rank, value offset, marker) for a label word, or None when it is none."""
    gap = _GAP.match(upper, end)
    pos = gap.end() if gap is not None else end
    number_word = _WORD.match(upper, pos)
    has_number_word = (
        number_word is not None
        and (
            _is_word(number_word.group(), _NUMBER_WORDS)
            # "No." with its o misread (Nb., N°.): N, one glyph, the dot.
            or (
                re.fullmatch(r"N\w", number_word.group()) is not None
                and upper[number_word.end() : number_word.end() + 1] == "."
            )
        )
    )
    if number_word is not None and has_number_word:
        pos = number_word.end()
    punct = _PUNCT.match(upper, pos)
    pos = punct.end() if punct is not None else pos
    marks = upper[end:pos]
    label = _label_of(word)
    before = re.search(r"([A-Z]+)[\s.]*$", upper[:start])
    if label is not None and before is not None and before.group(1) in _OTHER_NUMBERS:
        return None  # GST REF NO, MEMBER NO: another number's label
    if label is not None:
        tier, rank, glued = label
        marker = glued or has_number_word or bool(set(marks) & set("#:："))
        if _LABELS[rank].marker and not marker:
            return None
        return tier, rank, pos, marker
    # A bare "No.:" heading a letter-prefixed number, with no word before it on the row
    # (GST NO, TABLE NO, a company's CO. NO. are other numbers).
    if word != "NO" or re.search(r"[A-Z]{2}", upper[:start]):
        return None
    head = _VALUE.match(upper, pos)
    if not marks.strip() or head is None or not re.match(r"\[?[A-Z]+[-/]?\d", head.group()):
        return None
    if sum(ch.isdigit() for ch in head.group()) < 4:
        return None
    return _TIER_BARE_NO, 0, pos, True


def _labelled(rows: Sequence[Row]) -> list[_Candidate]:
    out: list[_Candidate] = []
    for at, row in enumerate(rows):
        upper = _upper(row)
        taken_until = 0
        for word, start, end in _words(upper):
            if start < taken_until:
                continue
            label = _label_at(upper, word, start, end)
            if label is None:
                continue
            tier, rank, pos, marker = label
            found = _candidate(row, pos, tier, rank)
            if found is not None and (marker or _same_print(row, end, found.source.start)):
                out.append(found)
                taken_until = found.source.end
                continue
            rest = upper[pos:].split()
            if not marker:
                continue
            found = None
            if not rest or _DATE_OR_TIME.match(rest[0]):
                found = _beside(rows, at, end, tier, rank)
            # Nothing after the label, or only a small boxed number (a table or queue):
            # the document number is on the row below.
            if found is None and (not rest or re.fullmatch(r"\d{1,2}", " ".join(rest))):
                found = _below(rows, at, tier, rank)
            if found is not None:
                out.append(found)
    return out


def _unlabelled(rows: Sequence[Row]) -> list[_Candidate]:
    """A letter- or #-framed number at either end of a row that prints the date, or
    alone on a row and printed twice (the number again under its barcode)."""
    out: list[_Candidate] = []
    alone: dict[str, list[Row]] = {}
    for row in rows:
        upper = _upper(row)
        tokens = list(re.finditer(r"\S+", upper))
        if len(tokens) == 1 and _FRAMED.fullmatch(tokens[0].group()):
            alone.setdefault(tokens[0].group().strip("#"), []).append(row)
        if len(tokens) < 2 or not _DATE_IN_ROW.search(upper):
            continue
        for tok in (tokens[0], tokens[-1]):
            if not _FRAMED.fullmatch(tok.group()):
                continue
            start = tok.start() + (1 if tok.group().startswith("#") else 0)
            end = tok.end() - (1 if tok.group().endswith("#") else 0)
            found = _candidate(row, start, _TIER_UNLABELLED, 0)
            if found is not None and found.source.end == end:
                out.append(found)
                break
    for same in alone.values():
        if len(same) >= 2:
            found = _candidate(same[0], 0, _TIER_UNLABELLED, 1)
            if found is not None:
                out.append(found)
    return out


def extract_invoice_number(rows: Sequence[Row]) -> InvoiceResult:
    """The document number of the best label tier (value None when there is none).

    Its (raw) confidence is ``FOUND`` times the ``ocr_factor`` of each character that
    carries it, lowered further where look-alike letters were corrected or left undecided
    (:func:`invoice_confidence`), at most ``GUESSED`` for a reference number and
    ``PLACED`` for an unlabelled or order number. ``cap`` keeps guesses and
    unsure look-alikes under the threshold once ``extract_claim`` calibrates it.
    """
    candidates = _labelled(rows)
    if all(c.tier > _TIER_UNLABELLED for c in candidates):
        candidates += _unlabelled(rows)
    if not candidates:
        return InvoiceResult(None, 0.0)
    best = min(candidates, key=lambda c: (c.tier, c.rank, c.row_index))
    settled = settle_lookalikes(best.value)
    confidence = invoice_confidence(best.confs, settled)
    cap = lookalike_cap([best.confs[i] for i in (*settled.corrected, *settled.ambiguous)])
    if best.tier == _TIER_GUESSED:
        confidence, cap = min(confidence, GUESSED), min(cap, GUESSED)
    elif best.tier in (_TIER_UNLABELLED, _TIER_ORDER):
        confidence = min(confidence, PLACED)
    return InvoiceResult(
        value=settled.text.upper(),
        confidence=confidence,
        as_read=best.value.upper(),
        corrected=bool(settled.corrected),
        ambiguous=bool(settled.ambiguous),
        source=best.source,
        cap=cap,
    )
