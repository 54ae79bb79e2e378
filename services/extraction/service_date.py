"""The service date: which printed date is the transaction's, and how sure we are.

A receipt can print several dates (sale, print, expiry, a voucher's validity). Each
occurrence earns evidence from its form (a four-digit year or a month name beats a
two-digit year; a month-first reading of an impossible day-first date is doubtful), a
DATE / TARIKH label, a time printed beside it and its place on the page; labels such as
EXPIRY or VALID UNTIL count against it. The same date printed twice adds up; a different
date with evidence of its own lowers confidence.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from services.extraction.confidence import from_evidence, ocr_factor
from services.extraction.dates import DateMatch, find_dates
from services.extraction.layout import Row, Span
from services.extraction.money import find_amounts

_DATE_LABEL = re.compile(r"\b(DATE|TARIKH|TRKH|DT|TIME)\b", re.IGNORECASE)
_OTHER_DATE_LABEL = re.compile(
    r"\b(EXP|EXPIRY|EXPIRES|VALID|DUE|BEST BEFORE|BIRTH|DOB|FROM|UNTIL|PERIOD|ISSUED)\b",
    re.IGNORECASE,
)
_TIME = re.compile(r"(?<!\d)\d{1,2}:\d{2}(:\d{2})?|\d{1,2}[.:]\d{2}\s?[AP]M\b", re.I)
_EVIDENCE_SCALE = 0.6
_RIVAL_MIN = 0.5  # evidence below this (e.g. a date labelled EXPIRY) is no rival
_RIVAL_SHARPNESS = 3.0
_SOLE_DATE_BONUS = 0.5  # the only date printed is very likely the transaction's
OLDEST_PLAUSIBLE_YEARS = 20  # older than this is not a claim, it is an OCR mistake


@dataclass
class DateResult:
    value: date | None
    confidence: float
    in_future: bool = False
    too_old: bool = False
    conflicting_values: list[date] = field(default_factory=list)
    source: Span | None = None  # the printing of the date that weighed most
    # The month-first reading of the chosen date when every printing of it reads validly
    # both ways ("03/04/2018"), else None.
    alternative: date | None = None
    # What the receipt's other numeric dates say about its order: "day_first" (one reads
    # only day-first, "25/12/2018"), "month_first" ("12/25/2018"), both, or None.
    order_hint: str | None = None


def _form_weight(m: DateMatch, text: str) -> float:
    weight = {"numeric": 1.0, "iso": 1.0, "month_name": 1.1, "compact": 0.4}[m.kind]
    if m.kind == "numeric" and not re.search(r"\d{4}", text[m.start : m.end]):
        weight = 0.95  # two-digit year: could be read year-first
    if m.month_first:
        weight *= 0.6
    if m.mixed_separators:
        weight *= 0.7
    return weight


def _occurrence_weight(m: DateMatch, row: Row, prev: Row | None) -> float:
    before = row.text[: m.start]
    weight = _form_weight(m, row.text)
    if _OTHER_DATE_LABEL.search(before):
        return weight * 0.2
    if _DATE_LABEL.search(before) or (
        prev is not None and _DATE_LABEL.search(prev.text) and not find_dates(prev.text)
    ):
        weight += 0.6
    if _TIME.search(row.text[m.end :]) or _TIME.search(before):
        weight += 0.5
    if find_amounts(row.text):
        weight *= 0.7  # dates are printed on their own rows, not among amounts
    if m.kind == "compact" and weight < 0.9:
        weight *= 0.5  # a bare 8-digit number is more often a code than a date
    return weight


def choose_date(rows: Sequence[Row], today: date) -> DateResult:
    """The most evidenced plausible date, with a calibrated confidence."""
    evidence: dict[date, float] = defaultdict(float)
    ocr: dict[date, float] = defaultdict(float)
    printed: dict[date, tuple[float, Span]] = {}
    alternatives: dict[date, set[date | None]] = defaultdict(set)
    orders: set[str] = set()
    for i, row in enumerate(rows):
        prev = rows[i - 1] if i > 0 else None
        for m in find_dates(row.text):
            read = row.value_confidence(m.start, m.end)
            # A shakily read date is weak evidence, for itself and as a rival.
            weight = _occurrence_weight(m, row, prev) * max(ocr_factor(read), 0.05)
            evidence[m.value] += weight
            ocr[m.value] = max(ocr[m.value], read)
            if m.value not in printed or weight > printed[m.value][0]:
                printed[m.value] = (weight, Span(row, m.start, m.end))
            alternatives[m.value].add(m.alternative)
            if order := _order_shown(m):
                orders.add(order)
    if not evidence:
        return DateResult(None, 0.0)

    oldest = date(today.year - OLDEST_PLAUSIBLE_YEARS, 1, 1)
    plausible = {d: e for d, e in evidence.items() if oldest <= d <= today}
    pool = plausible or evidence
    best = max(pool, key=lambda d: (pool[d], d))
    support = pool[best]
    # Dates printed under another label (expiry, validity) are not rivals.
    others = {d: e for d, e in pool.items() if d != best and e >= _RIVAL_MIN}
    if not others:
        support += _SOLE_DATE_BONUS
    confidence = from_evidence(support, _EVIDENCE_SCALE)
    for rival in others.values():
        # Chance that the better-evidenced date is the right one of the two.
        confidence *= 1.0 / (1.0 + math.exp(-_RIVAL_SHARPNESS * (support - rival)))
    confidence *= ocr_factor(ocr[best])
    in_future = best > today
    too_old = best < oldest
    if in_future or too_old:
        confidence = min(confidence, 0.2)
    return DateResult(
        value=best,
        confidence=round(min(confidence, 0.999), 4),
        in_future=in_future,
        too_old=too_old,
        conflicting_values=sorted(others),
        source=printed[best][1],
        alternative=_only_alternative(alternatives[best]),
        order_hint="/".join(sorted(orders)) or None,
    )


def _order_shown(m: DateMatch) -> str | None:
    """The day/month order a numeric date proves by itself: only one reading is valid."""
    if m.kind != "numeric" or m.alternative is not None or m.value.day == m.value.month:
        return None
    return "month_first" if m.month_first else "day_first"


def _only_alternative(alternatives: set[date | None]) -> date | None:
    """The other reading, unless some printing of the date settles it (a month name)."""
    if None in alternatives or len(alternatives) != 1:
        return None
    return next(iter(alternatives))
