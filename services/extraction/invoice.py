"""Invoice / receipt number: the token after a document-number label.

OCR confuses letters and digits that look alike (O/0, I/1, l/1, S/5, B/8, Z/2) in
invoice numbers as much as in amounts, and one wrong character files the claim under
another document. The number's own pattern settles such a letter where that is safe
(:func:`settle_lookalikes`):

- The value is split into segments at ``/`` and ``-``, and each segment into runs of
  letters and runs of digits.
- A letter run holding any letter that is not a look-alike (``INV``, ``CS``, ``OR``,
  ``POS``) is a word: its letters stay letters, look-alikes included. The word also
  settles the recognizer's hesitation over such a letter (see ``WORD_LOOKALIKE_FLOOR``).
- A run of one or two look-alike letters with digits on both sides in its segment
  (``1O0234``, ``0O12``, the ``O`` of ``INV-1O234``) sits in a run that is otherwise
  digits: each letter is read as the digit it resembles. Only this digit part of a
  mixed token is ever corrected.
- Any other run made only of look-alikes is ambiguous and left as read: a whole
  segment (``SO`` in ``SO-12345``, ``B`` in ``B/2023/30399``), a run at either end of a
  segment (``SO00022185``, ``1234S``: prefix or misread digit?) or a longer run between
  digits.

Corrected and ambiguous characters are then scored by
:func:`services.extraction.confidence.lookalike_adjusted`: recognised below 0.9, the
number is capped under the submit threshold and the claim goes to a person.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.extraction.confidence import lookalike_adjusted, ocr_factor
from services.extraction.layout import Row, Span

_LABEL = re.compile(
    r"\b(?P<label>(TAX )?INVOICE|INVOIS|NO\.? INVOIS|INV|RECEIPT|RESIT|BILL|DOC(UMENT)?|CS|"
    r"CASH ?BILL|"
    r"SLIP|TRANS(ACTION)?|TRX|TXN|ORDER|ORD|CHECK|CHK|REF|NO\.? RESIT|NO\.? BIL)"
    r"\s*(NO\b\.?|NUMBER\b|NUM\b|#)?\s*[:.#]?\s*"
    r"(?P<value>[A-Z0-9][A-Z0-9/-]*\d[A-Z0-9/-]*)",
    re.IGNORECASE,
)
# Earlier labels in this list are more specific to the document number.
_PRIORITY = (
    "INVOICE",
    "INVOIS",
    "NOINVOIS",
    "INV",
    "RECEIPT",
    "RESIT",
    "BILL",
    "CS",
    "DOC",
    "SLIP",
    "TRANS",
    "TRX",
    "TXN",
    "CHECK",
    "CHK",
    "ORDER",
    "ORD",
    "REF",
    "NO",
)


# How surely a labelled token is the document number: the label found it, not the page's
# arithmetic, so it stays below a clean amount's evidence but clears the submit threshold.
FOUND = 0.97
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
# A look-alike letter inside a word (the O of "OR-095474") read at least this surely is
# taken as read. Real OCR hesitates over exactly these letters (PP-OCR reads the O of
# "OR-" at 0.54-0.87 on clean generated receipts, the rest of the number at 0.99+), and
# its usual competitor is the look-alike digit, which the word rules out: with the recognizer
# and the pattern agreeing, the hesitation is not doubt about the value. Below even odds
# the letter counts as read, like any other character.
WORD_LOOKALIKE_FLOOR = 0.5


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
            if between_digits and len(letters) <= _MAX_CORRECTED_RUN:
                for i in offsets:
                    chars[i] = LOOKALIKES[chars[i]]
                corrected.extend(offsets)
            else:
                ambiguous.extend(offsets)
    return Settled("".join(chars), tuple(corrected), tuple(ambiguous), tuple(in_words))


def invoice_confidence(confs: Sequence[float], settled: Settled) -> float:
    """``FOUND`` x recognition of the weakest letter or digit, adjusted for look-alikes.

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
    weakest = min(carried)
    confidence = FOUND * ocr_factor(weakest)
    doubtful = [confs[i] for i in (*settled.corrected, *settled.ambiguous)]
    return round(lookalike_adjusted(confidence, doubtful), 4)


def extract_invoice_number(rows: Sequence[Row]) -> InvoiceResult:
    """The most specifically labelled document number (value None when there is none).

    Its confidence is ``FOUND`` times ``ocr_factor`` of the weakest character that carries
    it (as for amounts), lowered further where look-alike letters were corrected or left
    undecided (:func:`invoice_confidence`).
    """
    best: tuple[int, str, tuple[float, ...], Span] | None = None
    for row in rows:
        for m in _LABEL.finditer(row.text):
            label = re.sub(r"[^A-Z]", "", m["label"].upper()).replace("TAX", "")
            if label.startswith("CASHBILL"):
                label = "BILL"
            rank = next((i for i, p in enumerate(_PRIORITY) if label.startswith(p)), len(_PRIORITY))
            raw = m["value"]
            value = raw.strip("/-")
            if len(value) < 3 or re.fullmatch(r"\d{1,2}[:.]\d{2}", value):
                continue
            start = m.start("value") + len(raw) - len(raw.lstrip("/-"))
            confs = row.confs[start : start + len(value)]
            if best is None or rank < best[0]:
                best = (rank, value, confs, Span(row, start, start + len(value)))
    if best is None:
        return InvoiceResult(None, 0.0)
    _, value, confs, source = best
    settled = settle_lookalikes(value)
    return InvoiceResult(
        value=settled.text.upper(),
        confidence=invoice_confidence(confs, settled),
        as_read=value.upper(),
        corrected=bool(settled.corrected),
        ambiguous=bool(settled.ambiguous),
        source=source,
    )
