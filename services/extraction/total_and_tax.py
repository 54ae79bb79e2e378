"""Total and tax: labelled amounts, arithmetic cross-checks and how sure we are.

Every amount on the page is paired with the label printed before it on its visual row
(or on the row just above when the amount sits alone on its own row). Evidence for each
candidate total then adds up: how strong its label is, how often it is printed, whether
CASH - CHANGE, SUBTOTAL + TAX + ROUNDING or TOTAL + ROUNDING reproduce it. Competing
total-labelled values that nothing explains are held against it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal

from services.extraction.confidence import from_evidence, ocr_factor
from services.extraction.labels import DISCOUNT, SERVICE_CHARGE, Kind, classify, normalise
from services.extraction.layout import Row, Span
from services.extraction.money import find_amounts

FIVE_SEN = Decimal("0.05")
# How many tax, subtotal, service-charge and discount values a rival total is tried with.
_MAX_STEPS = 12
TAX_TOLERANCE = Decimal("0.02")  # tax computed per line drifts a few sen from total * rate

# Evidence that a label lends to the amount it announces.
_LABEL_WEIGHT = {Kind.GRAND_TOTAL: 3.0, Kind.TOTAL: 2.0, Kind.WEAK_TOTAL: 0.8}
_TOTAL_KINDS = frozenset(_LABEL_WEIGHT)
# Amounts that are never the amount paid, whatever their value. (A ROUNDING line's amount
# that equals the rounded total is the total after rounding: "Total After Adj 88.95".)
_NOT_A_PAID_TOTAL = frozenset({Kind.SUBTOTAL, Kind.TAX, Kind.CHANGE})
# Printed in the totals block under these, an amount is a candidate for the learned scorer.
_EXTRA_KINDS = frozenset({Kind.ROUNDING, Kind.CASH, Kind.NONE})
# Evidence from arithmetic that reproduces a value from other labelled amounts.
_PAYMENT_CHECK = 1.5  # CASH - CHANGE = value
_CASH_EQUAL = 1.0  # CASH = value, no change given
_SUM_CHECK = 1.2  # SUBTOTAL + TAX (+ ROUNDING) = value
_UNLABELLED = 0.4  # bare amount printed in the totals block
_VERIFIED_OCR_WEIGHT = 0.3  # how much shaky recognition still counts once cross-checked
# An exact total and the cash-rounded one printed with no rounding line are this close.
_MAX_UNPRINTED_ROUNDING = Decimal("0.04")
# How fast evidence turns into confidence: 1 - exp(-evidence / scale).
_EVIDENCE_SCALE = 1.2


@dataclass(frozen=True)
class Labelled:
    """One amount printed on the page with the kind its label announces."""

    value: Decimal
    kind: Kind
    row: Row
    ocr: float  # weakest recognition confidence among the amount's characters
    from_row_above: bool
    comma_decimal: bool
    start: int = 0  # where in ``row.text`` the amount is printed
    end: int = 0

    @property
    def span(self) -> Span:
        return Span(self.row, self.start, self.end)


@dataclass
class AmountResult:
    """The chosen value of a field and the evidence behind it."""

    value: Decimal | None
    confidence: float
    method: str  # how it was found, for reasons and debugging
    support: float = 0.0
    conflict: float = 0.0
    mismatch: bool = False  # CASH - CHANGE contradicts the chosen total
    rounding_ambiguous: bool = False  # both the unrounded and the rounded total are printed
    # Exact and cash-rounded totals printed with no rounding line, and neither the payment
    # nor the position of the last total line says which was paid.
    rounding_undecided: bool = False
    # A total line's only amount reads negative: a credit note, or a dash read as minus.
    negative_total: bool = False
    checks: list[str] = field(default_factory=list)
    conflicting_values: list[Decimal] = field(default_factory=list)
    # Where the value is printed; None when it was computed from several (CASH - CHANGE).
    source: Span | None = None


def labelled_amounts(rows: Sequence[Row]) -> list[Labelled]:
    """Pair every amount with the label before it (same row, or the row above)."""
    out: list[Labelled] = []
    for i, row in enumerate(rows):
        # A rate ("GST 6.00%") is part of the label, not an amount of its own.
        amounts = [a for a in find_amounts(row.text) if row.text[a.end : a.end + 1] != "%"]
        prev_end = 0
        run: list[tuple[int, Kind]] = []  # indices into `out` of the current label's amounts
        for n, amt in enumerate(amounts):
            label_text = row.text[prev_end : amt.start]
            kind = classify(label_text.rstrip("-$ ").rstrip())
            above = False
            if kind is Kind.NONE and n == 0 and i > 0:
                kind, above = _label_above(rows[i - 1], row)
            if kind is Kind.NONE and run:
                # More amounts under one label ("TOTAL : 52.00 3.12"): a table row such as
                # the GST summary, whose columns mean different things. Trust none of them.
                for idx, _ in run:
                    out[idx] = _with_kind(out[idx], Kind.OTHER)
                kind = Kind.OTHER
            value = -amt.value if amt.negative else amt.value
            out.append(
                Labelled(
                    value=value,
                    kind=kind,
                    row=row,
                    ocr=row.span_confidence(amt.start, amt.end),
                    from_row_above=above,
                    comma_decimal=amt.comma_decimal,
                    start=amt.start,
                    end=amt.end,
                )
            )
            if kind is not Kind.NONE:
                run.append((len(out) - 1, kind))
            prev_end = amt.end
    return _rounded_totals(out)


def _rounded_totals(items: list[Labelled]) -> list[Labelled]:
    """A ROUNDING line that prints a whole total is the total after rounding.

    "Rounding RM 45.35" under "Total Sales RM 45.34", "lotal After Adj 88.95" under
    "Total Sales 88.97": a multiple of 5 sen within the largest cash rounding (4 sen) of a
    total printed above it. It becomes a total candidate like any other, so the receipt's
    payment (or its being the last total line) decides whether it was paid; a rounding
    line's cents (0.01..0.04) stay the rounding.
    """
    out = []
    for it in items:
        if (
            it.kind is Kind.ROUNDING
            and it.value >= 1
            and it.value % FIVE_SEN == 0
            and any(
                other.kind in (Kind.GRAND_TOTAL, Kind.TOTAL)
                and other.row.index < it.row.index
                and 0 < abs(it.value - other.value) <= _MAX_UNPRINTED_ROUNDING
                for other in items
            )
        ):
            it = _with_kind(it, Kind.TOTAL)
        out.append(it)
    return out


def _with_kind(item: Labelled, kind: Kind) -> Labelled:
    return replace(item, kind=kind)


def _label_above(above: Row, row: Row) -> tuple[Kind, bool]:
    """Label of an amount that sits alone under a label-only row ("TOTAL" / "12.50")."""
    gap = row.top - above.bottom
    if above.page != row.page or gap > 1.5 * max(row.height, 1.0) or find_amounts(above.text):
        return Kind.NONE, False
    kind = classify(above.text)
    return kind, kind is not Kind.NONE


def _tender_less_change(cash: Sequence[Decimal], change: Sequence[Decimal]) -> set[Decimal]:
    """What the payment says was paid: each tender less each change given back."""
    return {c - g for c in cash for g in change if c > g > 0}


def _near(computed: Decimal, printed: Decimal) -> bool:
    """A computed sum matches a printed amount as is or rounded to 5 sen (cash rounding)."""
    return printed in (computed, round5(computed))


def round5(x: Decimal) -> Decimal:
    """``x`` rounded to 5 sen, as Malaysian cash payments are."""
    return (x / FIVE_SEN).quantize(Decimal(1), rounding=ROUND_HALF_UP) * FIVE_SEN


def _evidence_to_confidence(evidence: float) -> float:
    return from_evidence(evidence, _EVIDENCE_SCALE)


@dataclass
class TotalWeights:
    """The rules' candidate totals: evidence per value, the printings and checks behind it."""

    evidence: dict[Decimal, float]
    readings: dict[Decimal, list[Labelled]]
    checks: dict[Decimal, list[str]]
    undecided: set[Decimal]  # exact/rounded pairs that nothing on the receipt decides
    roundings: list[Decimal]
    cash: list[Decimal]
    change: list[Decimal]
    negative: bool  # a total line's only amount reads negative
    # Amounts printed in the totals block that no label or sum makes a total (a "ROUNDING
    # 45.35" line that prints the rounded total, a tender): candidates for the learned
    # scorer only; the rules never choose them.
    extras: frozenset[Decimal] = frozenset()

    @property
    def rules_best(self) -> Decimal:
        """The value the rules choose: the most evidence (ties: the larger value)."""
        return max(self.evidence, key=lambda v: (self.evidence[v], v))


def weigh_totals(items: Sequence[Labelled]) -> TotalWeights | None:
    """Evidence for every candidate total; None when nothing is labelled or adds up."""
    # "Total Payable: -51.88": the only amount on a total line reads negative. Most often
    # a dash or colon misread as a minus, sometimes a credit note; take its digits and let
    # a person confirm them (``negative_total``) rather than fall back to another line.
    negative = [it for it in items if _negative_total_line(it, items)]
    totals = [it for it in items if it.kind in _TOTAL_KINDS and it.value > 0]
    totals += [replace(it, value=-it.value) for it in negative]
    by_kind: dict[Kind, list[Labelled]] = defaultdict(list)
    for it in items:
        by_kind[it.kind].append(it)
    roundings = [it.value for it in by_kind[Kind.ROUNDING] if it.value != 0 and abs(it.value) < 1]
    cash = [it.value for it in by_kind[Kind.CASH] if it.value > 0]
    change = [it.value for it in by_kind[Kind.CHANGE] if it.value >= 0]
    subtotals = [it.value for it in by_kind[Kind.SUBTOTAL] if it.value > 0]
    taxes = [it.value for it in by_kind[Kind.TAX] if it.value >= 0] + [Decimal(0)]
    sums = {s + t + r for s in subtotals for t in taxes for r in [*roundings, Decimal(0)]}
    sums |= {round5(v) for v in sums}
    # SUBTOTAL + TAX + ROUNDING that is printed as the amount paid is a candidate even
    # when the TOTAL line itself was misread or lost.
    paid_or_bare = {it.value for it in items if it.kind in (Kind.CASH, Kind.NONE)}
    arithmetic = {v for v in sums if v in paid_or_bare and v > 0}
    paid = _tender_less_change(cash, change)
    if not totals:
        # No total line, but the payment pays the receipt's sum ("SUBTOTAL 28.70", "INC 6%
        # GST 1.62", CASH 100.00, CHANGE 71.30): the till printed no other total.
        arithmetic |= {v for v in sums if v in paid and v > 0}
    if not totals and not arithmetic:
        return None

    evidence: dict[Decimal, float] = defaultdict(float)
    readings: dict[Decimal, list[Labelled]] = defaultdict(list)
    checks: dict[Decimal, list[str]] = defaultdict(list)
    for v in arithmetic:
        evidence[v] += 0.0
        readings[v].extend(it for it in items if it.value == v)
    first_total_row = min((it.row.index for it in totals), default=len(items) + 1)
    for it in totals:
        weight = _LABEL_WEIGHT[it.kind] * (0.85 if it.from_row_above else 1.0)
        if it.row.rel_y < 0.2:  # totals are printed below the items, not in the header
            weight *= 0.5
        evidence[it.value] += weight
        readings[it.value].append(it)
    for it in items:  # bare amounts in the totals block, e.g. the rounded total alone
        if (
            it.kind is Kind.NONE
            and it.row.index >= first_total_row
            and it.value > 0
            and it.value in evidence
        ):
            evidence[it.value] += _UNLABELLED
            readings[it.value].append(it)

    # TOTAL + ROUNDING: the rounded amount is what was paid; the unrounded loses weight.
    # It need not be printed when the payment shows it ("TOTAL 38.37", "ROUNDING -0.02",
    # CASH 40.35, CHANGE 2.00) and it is a whole multiple of 5 sen, as every cash-rounded
    # total is: then the total line it comes from stands as its reading.
    for base in list(evidence):
        for r in roundings:
            rounded = base + r
            printed = [it for it in items if it.value == rounded]
            shown_by_payment = rounded in paid and rounded % FIVE_SEN == 0
            if rounded > 0 and (printed or shown_by_payment):
                evidence[rounded] += evidence[base] * 0.9
                evidence[base] *= 0.3
                checks[rounded].append("total_plus_rounding")
                readings[rounded].extend(printed or readings[base])

    for value in list(evidence):
        if value in paid:
            evidence[value] += _PAYMENT_CHECK
            checks[value].append("cash_minus_change")
        elif value in cash and not any(g > 0 for g in change):
            evidence[value] += _CASH_EQUAL
            checks[value].append("cash_equals_total")
        if any(_near(s, value) for s in sums):
            evidence[value] += _SUM_CHECK
            checks[value].append("subtotal_tax_rounding")

    undecided = _decide_unprinted_rounding(totals, cash, change, roundings, evidence, checks)
    extras = frozenset(
        it.value
        for it in items
        if it.kind in _EXTRA_KINDS
        and it.row.index >= first_total_row
        and it.value >= 1
        and it.value not in evidence
    )
    return TotalWeights(
        evidence, readings, checks, undecided, roundings, cash, change, bool(negative), extras
    )


def choose_total(items: Sequence[Labelled], pick: Decimal | None = None) -> AmountResult:
    """The payable total with a confidence built from labels, arithmetic and recognition.

    ``pick``, one of the candidate values of ``weigh_totals`` (the learned scorer's choice,
    ``services.extraction.candidate_scorer``), replaces the rules' choice; the confidence
    and the checks are still the rules' own for that value.
    """
    weights = weigh_totals(items)
    if weights is None:
        return _fallback_total(items)
    evidence, readings, checks = weights.evidence, weights.readings, weights.checks
    roundings, cash, change = weights.roundings, weights.cash, weights.change
    undecided = weights.undecided
    best = pick if pick in evidence or pick in weights.extras else weights.rules_best
    if best not in evidence:  # an extra: its printings are all there is to show
        readings[best] = [it for it in items if it.value == best]
    support = evidence.get(best, 0.0)
    explained = {best - r for r in roundings} | {best}
    conflicts = {
        v: e
        for v, e in evidence.items()
        if v not in explained
        and not any(_near(x, v) or _near(v, x) for x in explained)
        and not _part_of(v, best, items, roundings)
        and any(it.kind in (Kind.GRAND_TOTAL, Kind.TOTAL) for it in readings[v])
    }
    conflict = sum(conflicts.values())

    paid = _tender_less_change(cash, change)
    mismatch = bool(paid) and not paid & explained
    # Receipts print both the exact total and the total rounded to 5 sen; the rounded one
    # is what was paid, confirmed by CASH - CHANGE or a final TOTAL line (total_checks).
    unrounded = {best - r for r in roundings} - {best}
    rounding_ambiguous = any(
        it.value in unrounded for it in items if it.kind in _TOTAL_KINDS or it.kind is Kind.SUBTOTAL
    )
    # Exact and rounded totals both printed: the receipt's arithmetic (total_checks)
    # decides whether the rounded one was paid, not a penalty here.
    confidence = _evidence_to_confidence(support)
    if mismatch:
        confidence *= 0.7
    if conflict:
        confidence *= support / (support + 1.5 * conflict)
    best_readings = [it for it in readings[best] if it.value == best] or readings[best]
    ocr = max((it.ocr for it in best_readings), default=0.0)
    factor = ocr_factor(ocr)
    if {"cash_minus_change", "subtotal_tax_rounding"} & set(checks[best]) or len(
        {it.row.index for it in best_readings}
    ) > 1:
        # Arithmetic over other numbers, or a second printing, reproduces these exact
        # digits: a misread would have to be repeated or compensated to survive that.
        factor = 1.0 - (1.0 - factor) * _VERIFIED_OCR_WEIGHT
    confidence *= factor
    if best_readings and all(it.comma_decimal for it in best_readings):
        confidence *= 0.85
    # Shown to a reviewer: the printing under the strongest total label, else the first.
    shown = max(
        best_readings,
        key=lambda it: (_LABEL_WEIGHT.get(it.kind, 0.0), -it.row.index),
        default=None,
    )
    return AmountResult(
        value=best,
        confidence=round(min(confidence, 0.999), 4),
        method="labelled",
        support=support,
        conflict=conflict,
        mismatch=mismatch,
        rounding_ambiguous=rounding_ambiguous,
        rounding_undecided=best in undecided
        or _rounded_printed_below(best, items, readings[best])
        or _off_the_rounding_grid(best, items),
        negative_total=weights.negative,
        checks=checks[best],
        conflicting_values=sorted(conflicts),
        source=shown.span if shown is not None else None,
    )


def service_charges(items: Sequence[Labelled]) -> list[Decimal]:
    """The service charges printed (amounts of rows labelled SERVICE CHARGE, SRV CHG)."""
    return [
        it.value
        for it in items
        if it.kind is Kind.OTHER and it.value > 0 and SERVICE_CHARGE.search(normalise(it.row.text))
    ]


def _part_of(
    value: Decimal, best: Decimal, items: Sequence[Labelled], roundings: Sequence[Decimal]
) -> bool:
    """A "total" that up to three of the receipt's tax, subtotal and service-charge lines
    bring up to the chosen total, or its discount brings down to it (with the rounding), is
    a stage of that total, not a rival: "5 Item(s) Total 20.00" + GST 1.20 = Net Total
    21.20; "Total Amount : 49.60" + service 4.96 + GST 3.27 - 0.03 = 57.80; "Total 277.90",
    "Discount: 0.90", "Total Inclusive GST: 277.00"; "Total GST 0.87"."""
    steps = [it.value for it in items if it.kind in (Kind.SUBTOTAL, Kind.TAX) and it.value > 0]
    steps += service_charges(items)
    steps += [
        -abs(it.value)
        for it in items
        if it.kind is Kind.OTHER and it.value != 0 and DISCOUNT.search(normalise(it.row.text))
    ]
    # Distinct values only, and at most _MAX_STEPS of them: a page of GST lines must not
    # make this a search (220 sums of three at most).
    distinct = sorted(set(steps), key=abs, reverse=True)[:_MAX_STEPS]
    return any(
        value + sum(chosen) + r == best
        for k in range(1, 4)
        for chosen in itertools.combinations(distinct, k)
        for r in (Decimal(0), *roundings)
    )


def _rounded_printed_below(
    best: Decimal, items: Sequence[Labelled], readings: Sequence[Labelled]
) -> bool:
    """The exact total's 5-sen rounding is printed below its last total line (under a
    label not read as a total, "lotal After Adj", or as a tender with no change) and the
    payment does not show that the exact one was paid: the rounded one may have been,
    so the claim goes to a person rather than to NCB with an amount off by the rounding.
    """
    rounded = round5(best)
    if rounded == best:
        return False
    cash = [it.value for it in items if it.kind is Kind.CASH and it.value > 0]
    change = [it.value for it in items if it.kind is Kind.CHANGE and it.value > 0]
    if best in _tender_less_change(cash, change) or (best in cash and not change):
        return False
    rows = [it.row.index for it in readings if it.value == best and it.kind in _TOTAL_KINDS]
    if not rows:
        return False
    last = max(rows)
    return any(
        it.value == rounded and it.row.index > last and it.kind not in _NOT_A_PAID_TOTAL
        for it in items
    )


def _off_the_rounding_grid(best: Decimal, items: Sequence[Labelled]) -> bool:
    """The receipt prints a cash rounding that was made, yet the total is not a multiple
    of 5 sen.

    A total after rounding always is, so one of the figures was misread. A worn glyph
    read the same wrong way everywhere ("0" as "3": TOTAL 5.03, ROUNDING 0.03, CASH
    10.03) passes every sum, but not this. (A rounding of 0.00 is printed on card
    receipts too, with exact totals, so it proves nothing.)
    """
    made = any(it.kind is Kind.ROUNDING and 0 < abs(it.value) < 1 for it in items)
    return made and best % FIVE_SEN != 0


def _negative_total_line(it: Labelled, items: Sequence[Labelled]) -> bool:
    """A TOTAL/GRAND TOTAL line whose only amount is negative."""
    if it.kind not in (Kind.GRAND_TOTAL, Kind.TOTAL) or it.value >= 0:
        return False
    return sum(1 for other in items if other.row.index == it.row.index) == 1


def _decide_unprinted_rounding(
    totals: Sequence[Labelled],
    cash: Sequence[Decimal],
    change: Sequence[Decimal],
    roundings: Sequence[Decimal],
    evidence: dict[Decimal, float],
    checks: dict[Decimal, list[str]],
) -> set[Decimal]:
    """An exact total and a cash-rounded one (a multiple of 5 sen, at most 4 sen more)
    printed with no rounding line between them: which one was paid.

    The payment decides (tender - change, or the tender alone with no change, equals one
    of them); failing that, the rounded total printed on the last total line was paid.
    The chosen one takes the other's weight, as TOTAL + ROUNDING does. Returns the values
    of pairs nothing decided, for the claim to go to review.
    """
    rows: dict[Decimal, int] = {}
    for it in totals:
        if it.kind in (Kind.GRAND_TOTAL, Kind.TOTAL):
            rows[it.value] = max(rows.get(it.value, -1), it.row.index)
    paid = _tender_less_change(cash, change) if any(g > 0 for g in change) else set(cash)
    last_row = max(rows.values(), default=-1)
    undecided: set[Decimal] = set()
    for exact in rows:
        for rounded in rows:
            gap = rounded - exact
            if not (0 < gap <= _MAX_UNPRINTED_ROUNDING) or rounded % FIVE_SEN or gap in roundings:
                continue
            if rounded in paid or (exact not in paid and rows[rounded] == last_row):
                won, lost = rounded, exact
            elif exact in paid:
                won, lost = exact, rounded
            else:
                undecided |= {exact, rounded}
                continue
            evidence[won] += evidence[lost] * 0.9
            evidence[lost] *= 0.3
            checks[won].append("unprinted_rounding")
    return undecided


def _fallback_total(items: Sequence[Labelled]) -> AmountResult:
    """No total label: CASH - CHANGE, else the largest amount low on the page (weak)."""
    cash = [it for it in items if it.kind is Kind.CASH and it.value > 0]
    change = [it for it in items if it.kind is Kind.CHANGE and it.value >= 0]
    if cash and change:
        c, g = max(cash, key=lambda it: it.value), change[0]
        if c.value - g.value > 0:
            conf = 0.6 * ocr_factor(min(c.ocr, g.ocr))
            return AmountResult(c.value - g.value, conf, "cash_minus_change", support=1.0)
    lower = [it for it in items if it.row.rel_y > 0.3 and it.value > 0]
    if not lower:
        return AmountResult(None, 0.0, "none")
    best = max(lower, key=lambda it: it.value)
    return AmountResult(
        best.value, 0.3 * ocr_factor(best.ocr), "largest_amount", support=0.3, source=best.span
    )


def choose_tax(items: Sequence[Labelled], total: Decimal | None) -> AmountResult:
    """The tax (GST/SST) amount: a tax-labelled value that fits the total's arithmetic."""
    taxes = [it for it in items if it.kind is Kind.TAX and it.value >= 0]
    if not taxes:
        return AmountResult(None, 0.0, "none")
    subtotals = [it.value for it in items if it.kind is Kind.SUBTOTAL]

    def score(it: Labelled) -> float:
        s = 1.0
        if total is not None and it.value < total:
            rates = (Decimal("0.06"), Decimal("0.10"), Decimal("0.08"), Decimal("0.05"))
            if any(abs(it.value - total * r / (1 + r)) <= TAX_TOLERANCE for r in rates):
                s += 2.0
            if any(_near(sub + it.value, total) for sub in subtotals):
                s += 2.0
        elif total is not None:
            s -= 1.0  # a "tax" as large as the total is a base amount, not the tax
        return s + 0.2 * sum(1 for other in taxes if other.value == it.value)

    best = max(taxes, key=lambda it: (score(it), -it.row.index))
    conf = _evidence_to_confidence(score(best)) * ocr_factor(best.ocr)
    return AmountResult(
        best.value, round(conf, 4), "labelled", support=score(best), source=best.span
    )
