"""Money amounts as printed on Malaysian receipts.

Receipts print cents always ("9.00", "RM 1,234.50", "$8.20", "MYR12.50"), so only numbers
with exactly two decimals count as amounts: that keeps quantities, codes and phone numbers
out. OCR sometimes reads the decimal point as a comma ("9,00"); that is accepted but
flagged so callers can lower their confidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

_AMOUNT = re.compile(
    r"(?<![\w.,])"  # not glued to another number or word
    r"(?P<neg0>-)?\s?(?P<cur>RM|MYR|\$|PM(?=\d))?\s?"  # "PM1.00": RM misread
    r"(?P<neg>-)?\s?"
    r"(?P<num>\d{1,3}(?:,\d{3})+\.\d{2}|\d+\.\d{2}|\d+,\d{2})"
    r"(?P<trail>-)?"
    r"(?!\d|[.,]\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Amount:
    """An amount found in a text: its value and where its characters are."""

    value: Decimal
    start: int  # offset of the first digit
    end: int  # offset after the last digit
    currency: str | None  # "RM", "MYR", "$" when printed next to it ("PM" read for RM)
    comma_decimal: bool  # decimal comma: likely an OCR misread of "."
    negative: bool


def find_amounts(text: str) -> list[Amount]:
    """All amounts in ``text``, left to right."""
    found: list[Amount] = []
    for m in _AMOUNT.finditer(text):
        num = m["num"]
        comma_decimal = "." not in num
        value = Decimal(num.replace(",", ".") if comma_decimal else num.replace(",", ""))
        found.append(
            Amount(
                value=value,
                start=m.start("num"),
                end=m.end("num"),
                currency=(m["cur"] or "").upper() or None,
                comma_decimal=comma_decimal,
                negative=bool(m["neg0"] or m["neg"] or m["trail"]),
            )
        )
    return found


def parse_amount(text: str) -> Decimal | None:
    """The single amount in ``text`` or None (used by tests and simple callers)."""
    found = find_amounts(text.strip())
    return found[0].value if len(found) == 1 else None


def format_amount(value: Decimal) -> str:
    """Canonical "12.50" form."""
    return f"{value.quantize(Decimal('0.01')):.2f}"
