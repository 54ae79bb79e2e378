"""A service date that the receipt's own tax contradicts.

Malaysia levied GST from 1 April 2015 to 31 August 2018. A receipt that charges GST yet
reads as dated before April 2015 has a misread date: a worn "8" read as "3" turns
15-03-18 into 15-03-13 with every character recognised at 0.99, so neither recognition
nor arithmetic doubts it. Only the lower bound is checked: printers kept GST labels
(at 0%) for a while after GST ended, so a later date proves nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from services.extraction.layout import Row
from services.extraction.money import find_amounts

GST_FROM = date(2015, 4, 1)
_GST = re.compile(r"\bGST", re.IGNORECASE)
_RATE = re.compile(r"(?<![\d.])\d{1,2}(\.\d{1,2})?\s?%")


def charges_gst(rows: Sequence[Row]) -> bool:
    """Some row that names GST prints an amount or a rate (a GST line, a total incl. GST,
    the GST summary, "PRICE INCLUSIVE 6% GST"); a GST registration number alone does not
    charge anything."""
    return any(
        _GST.search(row.text) and (find_amounts(row.text) or _RATE.search(row.text)) for row in rows
    )


def before_gst(value: date | None, rows: Sequence[Row]) -> bool:
    """The date reads earlier than GST existed on a receipt that charges GST."""
    return value is not None and value < GST_FROM and charges_gst(rows)
