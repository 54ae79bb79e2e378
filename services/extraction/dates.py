"""Calendar dates in the forms Malaysian receipts print them.

Day-first numeric dates ("25/12/2018", "12-01-19", "5.3.2018"), ISO dates, dates with
English or Malay month names ("05 MAR 2018", "3 Ogos 2019", "28 Disember 18",
"Mar 5, 2018") and compact "20180304". A numeric date whose middle part cannot be a
month is read month-first ("12/28/2017"), and marked so the caller can trust it less;
one that reads validly both ways ("03/04/2018") is read day-first and carries its
month-first reading, for the caller to decide from the rest of the receipt.
Impossible dates (31/02) are dropped, not guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

MONTHS: dict[str, int] = {
    # English
    "JANUARY": 1, "FEBRUARY": 2, "MARCH": 3, "APRIL": 4, "MAY": 5, "JUNE": 6, "JULY": 7,
    "AUGUST": 8, "SEPTEMBER": 9, "OCTOBER": 10, "NOVEMBER": 11, "DECEMBER": 12,
    "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9,
    "SEPT": 9, "OCT": 10, "NOV": 11, "DEC": 12,
    # Malay
    "JANUARI": 1, "FEBRUARI": 2, "MAC": 3, "MEI": 5, "JULAI": 7, "OGOS": 8, "OGO": 8,
    "OKTOBER": 10, "OKT": 10, "DISEMBER": 12, "DIS": 12,
}  # fmt: skip

_MONTH_ALT = "|".join(sorted(MONTHS, key=len, reverse=True))

_NUMERIC = re.compile(
    r"(?<![\w/.~-])(?P<d>\d{1,2})\s?(?P<s1>[/.~-])\s?(?P<m>\d{1,2})\s?(?P<s2>[/.~-])\s?"
    # "04/03/201815:41" and "06/04/1711:43am": a time glued to a four- or two-digit year
    r"(?P<y>\d{4}(?=\d{1,2}:\d{2})|(?!(?:19|20)\d\d:)\d{2}(?=\d{1,2}:\d{2})|"
    r"(?:\d{4}|\d{2})(?![\d/]|\.\d))"
)
# One separator lost to OCR: "05 02-18", "2703/2018", "27032018" (trusted less).
_DAMAGED = re.compile(
    r"(?<![\w/.-])(?P<d>[0-3]\d)(?:\s(?P<m1>[01]\d)[/.-]|(?P<m2>[01]\d)[/.-]?)"
    r"(?P<y>20\d{2}|\d{2}(?=\s|$))(?![\d/]|\.\d)"
)
_ISO = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<s1>[/.-])(?P<m>\d{1,2})(?P=s1)(?P<d>\d{1,2})(?!\d)"
)
_DAY_MONTH = re.compile(
    rf"(?<!\d)(?P<d>\d{{1,2}})\s?[-/ .]?\s?(?P<mon>{_MONTH_ALT})\b\.?\s?[-/ .,]?\s?"
    r"(?P<y>\d{4}(?=\d{1,2}:\d{2})|(?:\d{4}|\d{2})(?!\d))",  # "05 Mar 201818:24" glued
    re.IGNORECASE,
)
_MONTH_DAY = re.compile(
    rf"\b(?P<mon>{_MONTH_ALT})\b\.?\s(?P<d>\d{{1,2}}),?\s(?P<y>\d{{4}})(?!\d)", re.IGNORECASE
)
_COMPACT = re.compile(r"(?<!\d)(?P<y>20\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d)(?!\d)")


@dataclass(frozen=True)
class DateMatch:
    """A date found in a text and how it was written."""

    value: date
    start: int
    end: int
    kind: str  # "numeric", "iso", "month_name", "compact"
    month_first: bool = False  # read month-first because day-first was impossible
    mixed_separators: bool = False
    # The month-first reading when the text reads validly both ways ("03/04/2018"):
    # only where it was printed can say which one is meant.
    alternative: date | None = None


def _year(text: str) -> int:
    n = int(text)
    return 2000 + n if n < 100 else n


def _make(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def find_dates(text: str) -> list[DateMatch]:
    """All plausible dates in ``text``, left to right, without overlaps."""
    found: list[DateMatch] = []

    def add(match: DateMatch) -> None:
        if all(match.end <= f.start or match.start >= f.end for f in found):
            found.append(match)

    for m in _ISO.finditer(text):
        if value := _make(int(m["y"]), int(m["m"]), int(m["d"])):
            add(DateMatch(value, m.start(), m.end(), "iso"))
    for m in _DAY_MONTH.finditer(text):
        if value := _make(_year(m["y"]), MONTHS[m["mon"].upper()], int(m["d"])):
            add(DateMatch(value, m.start(), m.end(), "month_name"))
    for m in _MONTH_DAY.finditer(text):
        if value := _make(int(m["y"]), MONTHS[m["mon"].upper()], int(m["d"])):
            add(DateMatch(value, m.start(), m.end(), "month_name"))
    for m in _NUMERIC.finditer(text):
        day, month, year = int(m["d"]), int(m["m"]), _year(m["y"])
        mixed = m["s1"] != m["s2"]
        if value := _make(year, month, day):
            other = _make(year, day, month) if day != month else None
            add(DateMatch(value, m.start(), m.end(), "numeric", False, mixed, other))
        elif value := _make(year, day, month):
            add(DateMatch(value, m.start(), m.end(), "numeric", True, mixed))
    for m in _DAMAGED.finditer(text):
        if value := _make(_year(m["y"]), int(m["m1"] or m["m2"]), int(m["d"])):
            add(DateMatch(value, m.start(), m.end(), "compact"))
    for m in _COMPACT.finditer(text):
        if value := _make(int(m["y"]), int(m["m"]), int(m["d"])):
            add(DateMatch(value, m.start(), m.end(), "compact"))
    return sorted(found, key=lambda f: f.start)


def parse_date(text: str) -> date | None:
    """The single date in ``text`` or None."""
    found = find_dates(text.strip())
    return found[0].value if len(found) == 1 else None
