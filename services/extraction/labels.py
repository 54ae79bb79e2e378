"""What a label printed before an amount says the amount is.

Labels are matched on a normalised form (upper case, letters/digits/%/spaces only, OCR's
"0" inside words read as "O") so "T0TAL AMT.....", "Total Amt :" and "TOTAL AMT" all
look the same. Order matters: distractors such as SUBTOTAL, TOTAL QTY, CASH and CHANGE
are recognised before the generic TOTAL, and the GST summary table's "Total 6% supplies
(Inc. GST)" / "Total SR" lines before any total, subtotal or tax.
"""

from __future__ import annotations

import re
from enum import Enum


class Kind(Enum):
    GRAND_TOTAL = "grand_total"  # the payable amount, unambiguously labelled
    TOTAL = "total"  # a plain "TOTAL"
    WEAK_TOTAL = "weak_total"  # a label that usually, not always, carries the total
    SUBTOTAL = "subtotal"  # before tax / before rounding
    TAX = "tax"
    ROUNDING = "rounding"
    CASH = "cash"  # tendered / paid
    CHANGE = "change"
    OTHER = "other"  # quantities, discounts, savings, headers: never the total
    NONE = "none"  # no label text at all


# INCLUSIVE with one letter misread ("lnclusive", "Inciusive"); EXCLUSIVE is two away.
_INCLUSIVE_MISREAD = re.compile(
    r"\b(?:" + "|".join(f"{'INCLUSIVE'[:i]}[A-Z1]{'INCLUSIVE'[i + 1 :]}" for i in range(9)) + r")\b"
)


def normalise(text: str) -> str:
    """Upper case, O for 0 between letters, punctuation to spaces (keeps % for rates)."""
    t = text.upper()
    t = re.sub(r"(?<=[A-Z])0|0(?=[A-Z])", "O", t)
    t = re.sub(r"[^A-Z0-9% ]+", " ", t)
    # common misreads
    t = re.sub(r"\bT[OAQ]T[AOE]L\b|\bTOTA[1I]\b|\bT0TAL\b|\bT(?:OTL|TAL|OAL)\b", "TOTAL", t)
    t = _INCLUSIVE_MISREAD.sub("INCLUSIVE", t)
    t = re.sub(r"\bTOTAL(?=(SALES?|AMOUNT|AMT|DUE|PAYABLE|INCL?|INCLUSIVE|RM)\b)", "TOTAL ", t)
    return re.sub(r"\s+", " ", t).strip()


# A service charge (restaurants add 5-10%) sits between the subtotal and the tax; a
# discount comes off the total before it. On normalised text; both are Kind.OTHER.
SERVICE_CHARGE = re.compile(r"\b(SERVICE|SERV|SVC|SRV|SVR) ?(CHARGE|CHRG|CHG|CHGS)\b")
DISCOUNT = re.compile(r"\bDISC(OUNT)?\b")

# A line of the GST summary table per rate ("Total 6% supplies (excl. GST)", "Total 0%
# supplic."), on normalised text; the group is the rate.
SUPPLIES_AT_RATE = r"([0-9]{1,2})% ?S?U[PR]{1,2}[LI]"

_RULES: list[tuple[Kind, re.Pattern[str]]] = [
    (Kind.OTHER, re.compile(
        r"\bTOTAL (QTY|QUANTITY|ITEM|ITEMS|PCS|UNIT|UNITS|DISC|DISCOUNT|SAVING|SAVINGS|"
        r"POINT|POINTS|NO OF)\b|\bQTY\b|\bITEM COUNT\b|\bPOINTS?\b|\bDISC(OUNT)?\b|"
        r"\bSAVINGS?\b|\bVOUCHER\b|\bDEPOSIT\b|\bBALANCE\b|"
        # The GST summary table ("Total 0% supplies", "Total SR", "Total ZR"): tax-summary
        # lines, whose amounts are a share of the sale, never the payable total.
        rf"{SUPPLIES_AT_RATE}|\bTOTAL (SR|ZR)\b")),
    (Kind.SUBTOTAL, re.compile(
        r"\bSUB ?TOTAL\b|\bSUBTTL\b|\bTOTAL (EXCL|EXCLUSIVE|EXCLUDING|BEFORE|W O|WITHOUT)\b|"
        r"\bEXCL(USIVE|UDING)? (OF )?GST\b|\bAMT EXCL|\bTOTAL GROSS\b|\bGROSS\b|\bNET OF GST\b")),
    (Kind.CHANGE, re.compile(r"\bCHANGE\b|\bCHG DUE\b|\bBAKI\b")),
    (Kind.CASH, re.compile(
        r"\bCAS+H+\b|\bTENDER(ED)?\b|\bPAID\b|\bPAYMENT\b|\bVISA\b|\bMASTER ?CARD\b|\bCARD\b|"
        r"\bCREDIT\b|\bDEBIT\b|\bAMEX\b|\bTUNAI\b|\bE ?WALLET\b|\bBOOST\b|\bGRAB ?PAY\b|"
        r"^PAY$")),
    (Kind.GRAND_TOTAL, re.compile(
        r"\bGRAND TOTAL\b|\bNETT? ?TOTAL\b|\bNETT? (AMT|AMOUNT)\b|\bTOTAL (AMT |AMOUNT )?PAYABLE\b|"
        r"\b(AMT|AMOUNT) (DUE|TO BE PAID|TO PAY|PAYABLE)\b|\bTOTAL DUE\b|"
        r"\bROUNDED TOTAL\b|\bTOTAL (AMT |AMOUNT )?ROUNDED\b|"
        r"\bTOTAL AFTER (ROUNDING|ADJ)|\bTOTAL (AMT |AMOUNT |SALES |RM )*"
        r"(INCL|INC|INCLUSIVE|INCLUDING|WITH)\b|\bJUMLAH\b|"
        # "TOTAL (GST INCL)"; "Total GST Inclusive: 0.42" is the GST a total includes
        r"\bTOTAL (GST|SST) INCL$|"
        # "Total Saies Inclusive GST": one misread word between TOTAL and INCLUSIVE
        r"\bTOTAL (?!GST|SST|TAX)[A-Z]+ (INCL|INC|INCLUSIVE|INCLUDING)\b")),
    (Kind.ROUNDING, re.compile(
        r"^(?!.*(TOTAL|\bTTL\b)).*(\bROUND(ING|ED)?\b|\bRND\b|\bADJ(USTMENT)?\b|\bPEMBUNDARAN\b)")),
    (Kind.WEAK_TOTAL, re.compile(r"\bTOTAL INCLUDES?\b")),
    (Kind.TAX, re.compile(
        r"\b(GST|SST|TAX|SERVICE TAX|SALES TAX|CUKAI)\b"
        r"(?! ?(ID|REG|NO|NUM|INVOICE|RECEIPT|SUMMARY))")),
    (Kind.TOTAL, re.compile(r"\bTOTAL\b|^TL\b|\bTTL\b|\bTOTA\b|\bOTAL\b|^DUE$")),
    (Kind.WEAK_TOTAL, re.compile(r"\bAMOUNT\b|\bAMT\b")),
]  # fmt: skip


def classify(label: str) -> Kind:
    """The kind of amount that ``label`` (text just before the amount) announces."""
    norm = re.sub(r"( ?\b(RM|MYR))+$", "", normalise(label)).strip()
    if not re.search(r"[A-Z]{2}", norm):
        return Kind.NONE
    for kind, pattern in _RULES:
        if pattern.search(norm):
            return kind
    return Kind.OTHER
