"""Independent checks of a chosen total against the receipt's own arithmetic.

A claim routed to ``submit`` reaches NCB with nobody looking, so the amount must be
corroborated: a labelled total that at least one independent reading of the receipt
reproduces. Each check is one small function returning AGREES, DISAGREES or None (the
receipt does not print the figures it needs), so a reason can say which checks agreed:

* ``tender_minus_change``: CASH/CARD tendered minus CHANGE (none printed: the tender
  alone) is what was paid.
* ``subtotal_tax_rounding``: SUBTOTAL + TAX + ROUNDING, or an exact total + ROUNDING,
  adds up to it.
* ``repeated_total``: the same amount is printed again on another row of the totals block.
* ``item_sum``: the item lines above the totals add up to it (alone, or plus tax/rounding).
* ``tax_summary``: the GST summary table printed under the totals ("SR 6% 559.53 33.57",
  "ZR 0% 10.00 0.00"; "Total 6% supplies (Inc. GST)" + "Total 0% supplies") adds up to
  it: the point of sale computes that table from the items, apart from the total line.

A misread digit would have to be repeated, or compensated by another misread, to pass
any of them. Only the payment check can *disagree*: when what was tendered minus the
change is a different amount, the receipt contradicts itself and a person decides.
The other sums are too often incomplete (a missing discount line, a tax table) for a
failed sum to mean the total is wrong; a failed sum just does not corroborate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from services.extraction.labels import SUPPLIES_AT_RATE, Kind, normalise
from services.extraction.total_and_tax import Labelled, round5, service_charges

_TOTAL_KINDS = frozenset({Kind.GRAND_TOTAL, Kind.TOTAL, Kind.WEAK_TOTAL})
_BLOCK_KINDS = _TOTAL_KINDS | {Kind.SUBTOTAL, Kind.TAX, Kind.ROUNDING}
# A row of the GST summary table: a tax code ("SR", "ZR", "S=", "Z =") or a rate ("6%",
# "@0%", "(0X)") before the taxable amount and its tax.
_TAX_CODE_ROW = re.compile(r"^(SR|ZR|ZRL|ES|OS|EX|[SZTE] ?=)|(^|[ @(=])[0-9]{1,2} ?[%X]( |\)|$)")
_SUPPLIES_ROW = re.compile(SUPPLIES_AT_RATE)
# The most tax a summary row can show on its taxable amount (GST 6%, service tax 10%).
_MAX_TAX_RATE = Decimal("0.10")


class Verdict(Enum):
    AGREES = "agrees"
    DISAGREES = "disagrees"


@dataclass(frozen=True)
class Corroboration:
    """Which checks reproduced the total and which contradicted it."""

    agreed: tuple[str, ...]
    disagreed: tuple[str, ...]
    # Printed under a TOTAL label, or a labelled total plus the printed rounding.
    labelled: bool = False

    @property
    def corroborated(self) -> bool:
        """A labelled total that an independent check reproduces and none contradicts."""
        return self.labelled and bool(self.agreed) and not self.disagreed


def _values(items: Sequence[Labelled], kind: Kind) -> list[Decimal]:
    return [it.value for it in items if it.kind is kind]


def _roundings(items: Sequence[Labelled]) -> list[Decimal]:
    return [v for v in _values(items, Kind.ROUNDING) if v != 0 and abs(v) < 1]


def tender_minus_change(total: Decimal, items: Sequence[Labelled]) -> Verdict | None:
    """CASH - CHANGE (or the tender alone when no change is printed) equals the total.

    Some tills print the tender as a payment out ("Cash -50.00"): its size is the tender.
    """
    tendered = [abs(v) for v in _values(items, Kind.CASH) if v != 0]
    change = [v for v in _values(items, Kind.CHANGE) if v >= 0]
    if not tendered:
        return None
    if not change or all(g == 0 for g in change):
        if total in tendered:
            return Verdict.AGREES
        # A tender below the total, or one equal to another printed total (a card paying
        # the exact amount of a receipt that also prints a cash-rounded one), contradicts
        # it; one above it with no change printed is some other line, not evidence.
        other_totals = {it.value for it in items if it.kind in _TOTAL_KINDS} - {total}
        if all(t < total for t in tendered) or set(tendered) & other_totals:
            return Verdict.DISAGREES
        return None
    paid = {t - g for t in tendered for g in change if t > g}
    if total in paid:
        return Verdict.AGREES
    return Verdict.DISAGREES if paid else None


def labelled_total(total: Decimal, items: Sequence[Labelled]) -> bool:
    """``total`` is printed under a total label, or is a labelled total + printed rounding.

    On a receipt that prints no total line at all, its SUBTOTAL is the sale's total
    ("SUBTOTAL 28.70", "INC 6% GST 1.62", CASH 100.00, CHANGE 71.30): labelled too, and
    corroborated only as any labelled total is, by a check such as the payment.
    """
    labelled = [it.value for it in items if it.kind in _TOTAL_KINDS]
    if not labelled:
        labelled = [it.value for it in items if it.kind is Kind.SUBTOTAL]
    if total in labelled:
        return True
    return any(v + r == total for v in labelled for r in _roundings(items))


def subtotal_tax_rounding(total: Decimal, items: Sequence[Labelled]) -> Verdict | None:
    """SUBTOTAL (+ SERVICE CHARGE) + TAX + ROUNDING, or an exact total + ROUNDING, equals
    the total."""
    charges = set(service_charges(items))
    subtotals = [it.value for it in items if it.kind is Kind.SUBTOTAL and it.value > 0]
    subtotals += [s + c for s in subtotals for c in charges]
    exact = [it.value for it in items if it.kind in _TOTAL_KINDS and it.value != total]
    roundings = _roundings(items)
    taxes = [v for v in _values(items, Kind.TAX) if v >= 0]
    if not subtotals and not (exact and roundings):
        return None
    for s in subtotals:
        for t in [*taxes, Decimal(0)]:
            for r in [*roundings, Decimal(0)]:
                if s + t + r == total:
                    return Verdict.AGREES
            if t and round5(s + t) == total:  # cash rounding left unprinted
                return Verdict.AGREES
    if any(e + r == total for e in exact for r in roundings):
        return Verdict.AGREES
    return None


def repeated_total(total: Decimal, items: Sequence[Labelled]) -> Verdict | None:
    """The total's digits are printed on two or more rows of the totals block."""
    block = [it for it in items if it.kind in _TOTAL_KINDS]
    if not block:
        return None
    first = min(it.row.index for it in block)
    rows = {
        it.row.index
        for it in items
        if it.value == total
        and (it.kind in _TOTAL_KINDS or (it.kind is Kind.NONE and it.row.index >= first))
    }
    return Verdict.AGREES if len(rows) >= 2 else None


def item_sum(total: Decimal, items: Sequence[Labelled]) -> Verdict | None:
    """The line amounts above the totals block add up to the total (with tax/rounding).

    The rightmost amount of each row above the first subtotal/total/tax row is taken as
    that row's line amount (a unit price, when printed, sits left of it).
    """
    block = [it.row.index for it in items if it.kind in _BLOCK_KINDS]
    if not block:
        return None
    first = min(block)
    line_amounts: dict[int, Labelled] = {}
    for it in items:
        if it.row.index < first and it.kind in (Kind.NONE, Kind.OTHER):
            line_amounts[it.row.index] = it  # later (further right) amounts replace earlier
    if len(line_amounts) < 1:
        return None
    s = sum((it.value for it in line_amounts.values()), Decimal(0))
    extras = [Decimal(0), *(v for v in _values(items, Kind.TAX) if v >= 0), *_roundings(items)]
    if s <= 0:
        return None
    if any(s + e == total or round5(s + e) == total for e in extras):
        return Verdict.AGREES
    return None


def tax_summary(total: Decimal, items: Sequence[Labelled]) -> Verdict | None:
    """The GST summary table under the totals adds up to the total (+ rounding).

    Two layouts: a row per tax code with its taxable amount and tax ("SR 6% 565.50
    33.93"), summed over the codes (a "TOTAL 565.50 33.93" row under them is their sum,
    so it counts alone); or a line per rate, "Total 6% supplies (Inc. GST)" (or the
    "(excl. GST)" line plus the GST line) plus "Total 0% supplies".
    """
    block = [it.row.index for it in items if it.kind in _BLOCK_KINDS]
    if not block:
        return None
    below = [it for it in items if it.row.index >= min(block)]
    sums = _code_row_sums(below) | _supplies_sums(below, items)
    if not sums:
        return None
    roundings = [Decimal(0), *_roundings(items)]
    if any(s + r == total or round5(s + r) == total for s in sums for r in roundings):
        return Verdict.AGREES
    return None


def _code_row_sums(below: Sequence[Labelled]) -> set[Decimal]:
    """Taxable amount + tax summed over the tax-code rows, and any TOTAL row's pair."""
    pairs: dict[int, tuple[Decimal, Decimal, bool]] = {}
    for index in {it.row.index for it in below}:
        on_row = [it for it in below if it.row.index == index]
        if len(on_row) != 2:
            continue
        net, tax = on_row[0].value, on_row[1].value
        label = normalise(on_row[0].row.text[: on_row[0].start])
        if abs(tax) > abs(net) * _MAX_TAX_RATE + Decimal("0.01"):
            continue
        is_total = label in {"TOTAL", "TOTAL RM"}
        if is_total or _TAX_CODE_ROW.search(label):
            pairs[index] = (net, tax, is_total)
    codes = [net + tax for net, tax, is_total in pairs.values() if not is_total]
    sums = {net + tax for net, tax, is_total in pairs.values() if is_total}
    if codes:
        sums.add(sum(codes, Decimal(0)))
    return sums


def _supplies_sums(below: Sequence[Labelled], items: Sequence[Labelled]) -> set[Decimal]:
    """Per rate: "Total 6% supplies (Inc. GST)" (or excl. + GST) + "Total 0% supplies"."""
    incl: list[Decimal] = []
    excl: list[Decimal] = []
    zero = Decimal(0)
    seen_zero = False
    for it in below:
        text = normalise(it.row.text[: it.start])
        rate = _SUPPLIES_ROW.search(text)
        if rate is None:
            continue
        if int(rate[1]) == 0:
            zero += it.value
            seen_zero = True
        elif re.search(r"\bEXCL", text):
            excl.append(it.value)
        elif re.search(r"\bINC", text):
            incl.append(it.value)
    if not (incl or excl or seen_zero):
        return set()
    taxes = _values(items, Kind.TAX)
    sums = {i + zero for i in incl} | {e + t + zero for e in excl for t in taxes}
    if seen_zero and not (incl or excl):
        sums.add(zero)
    return sums


CHECKS = (
    ("tender_minus_change", tender_minus_change),
    ("subtotal_tax_rounding", subtotal_tax_rounding),
    ("repeated_total", repeated_total),
    ("item_sum", item_sum),
    ("tax_summary", tax_summary),
)


def corroborate(total: Decimal, items: Sequence[Labelled]) -> Corroboration:
    """Run every check on ``total``; name the ones that agreed and that disagreed."""
    agreed: list[str] = []
    disagreed: list[str] = []
    for name, check in CHECKS:
        verdict = check(total, items)
        if verdict is Verdict.AGREES:
            agreed.append(name)
        elif verdict is Verdict.DISAGREES:
            disagreed.append(name)
    return Corroboration(tuple(agreed), tuple(disagreed), labelled_total(total, items))
