"""Where a receipt comes from: the currency it is in and whether it reads as Malaysian.

Two decisions depend on it. The currency: a claim in another currency than the
configured one must not reach NCB as if it were ringgit. And numeric dates: Malaysian
receipts write day-first, so "03/04/2018" is 3 April there; on a receipt that gives no
sign of where it was printed the same text could be 4 March.

Signals are read from the text as a whole: printed currencies (RM, MYR, US$, S$, EUR,
...), Malaysian ones (address words such as Jalan or Selangor, a 12-digit GST number,
SDN BHD, a .my domain, Malay receipt words) and foreign ones (a US state and ZIP code,
a Singapore postcode, a date that only reads month-first).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.extraction.dates import find_dates
from services.extraction.layout import Row

# Currency symbols, which mean money wherever they are printed.
_SYMBOLS: dict[str, str] = {
    "MYR": r"\bRM(?![A-Z])",  # "RM 9.00", "(RM)", "TOTAL RM"; not the start of "RMB"
    "USD": r"\bUS\s?\$",
    "SGD": r"\bS\$|\bSING\s?\$",
    "AUD": r"\bA\$",
    "HKD": r"\bHK\$",
    "BND": r"\bB\$",
}
# One-glyph symbols count only beside an amount ("€ 9.00", "9,00 €"): OCR sometimes reads
# a worn 0 as one of them ("7.6€"), and a Malaysian receipt must not wait for that.
for _code, _sym in (("EUR", "€"), ("GBP", "£"), ("JPY", "¥"), ("THB", "฿"), ("INR", "₹")):
    _SYMBOLS[_code] = rf"{_sym} ?\d|\d[.,]\d{{2}} ?{_sym}"
# ISO codes, which are also ordinary words ("SDN BND" misread, "CNY DECO" for Chinese New
# Year): they count only next to an amount on the same row, in brackets, or after CURRENCY.
_CODES = ("MYR", "USD", "SGD", "EUR", "GBP", "JPY", "CNY", "RMB", "AUD", "HKD", "THB", "IDR",
          "INR", "BND", "PHP", "VND", "KRW", "NZD", "CAD", "CHF")  # fmt: skip
_CODE_AS_CURRENCY = (
    r"\b{c} ?:? ?-?\d[\d,]*\.\d{{2}}\b|\d\.\d{{2}} ?{c}\b|\({c}\)|CURRENCY ?:? ?{c}\b"
)
_CURRENCY_RES = {code: re.compile(p) for code, p in _SYMBOLS.items()}
_CODE_RES = {code: re.compile(_CODE_AS_CURRENCY.format(c=code)) for code in _CODES}
_WORDS = re.compile(r"\bRINGGIT\b")
# A bare dollar sign before an amount ("$8.20") with no country letters in front of it.
_BARE_DOLLAR = re.compile(r"(?<![A-Z])\$\s?\d")
DOLLAR_CURRENCIES = frozenset({"USD", "SGD", "AUD", "HKD", "BND", "NZD", "CAD"})

_MALAYSIAN = {
    "address": re.compile(
        # "KG" is Kampung before a name, a weight after a number ("1.5 KG")
        r"(?<![0-9] )(?<![0-9])\bKG\b|"
        r"\b(JALAN|JLN|LORONG|PERSIARAN|LEBUHRAYA|TAMAN|TMN|KAMPUNG|BANDAR|PUSAT|"
        r"SELANGOR|KUALA LUMPUR|JOHOR|PULAU PINANG|PENANG|PERAK|KEDAH|KELANTAN|MELAKA|"
        r"MALACCA|NEGERI SEMBILAN|PAHANG|SABAH|SARAWAK|TERENGGANU|PERLIS|PUTRAJAYA|"
        r"LABUAN|WILAYAH PERSEKUTUAN|MALAYSIA|PETALING JAYA|SHAH ALAM|KLANG|SUBANG|"
        r"PUCHONG|CHERAS|KEPONG|SETAPAK|AMPANG|IPOH|SEREMBAN|KUANTAN|SEMENYIH|KAJANG|"
        r"RAWANG|SERI KEMBANGAN|JOHOR BAHRU|KOTA KINABALU|KUCHING)\b"
    ),
    "company": re.compile(r"\bSDN\.?\s?BHD\b|\bBERHAD\b|\(\d{5,7}-[A-Z]\)"),
    "tax_id": re.compile(r"\b(GST|SST)\b[^0-9]{0,20}\d{12}\b|\bSST\s?(REG|ID|NO)\b"),
    "domain": re.compile(r"\.MY\b"),
    "malay": re.compile(r"\b(TARIKH|JUMLAH|TUNAI|BAKI|RESIT|TERIMA KASIH|CUKAI|PEMBUNDARAN)\b"),
    "phone": re.compile(r"\+60|\b0[3-9]-\d{3,4}\s?\d{4}\b|\b01\d-\d{3,4}\s?\d{4}\b"),
}
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|"
    "NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC"
)
_FOREIGN = {
    "us_address": re.compile(rf",?\s\b({_US_STATES})\s\d{{5}}(-\d{{4}})?\b"),
    "sg_address": re.compile(r"\bSINGAPORE\s?\(?\d{6}\)?"),
}


@dataclass(frozen=True)
class Origin:
    """What the receipt says about where it was printed and in which currency."""

    currencies: frozenset[str]  # ISO codes printed on the receipt
    bare_dollar: bool  # "$" before amounts with no country letters
    malaysian: tuple[str, ...]  # names of the Malaysian signals found
    foreign: tuple[str, ...]  # names of the foreign signals found

    @property
    def clearly_malaysian(self) -> bool:
        """Ringgit printed, or Malaysian signals and no foreign currency or address."""
        if "MYR" in self.currencies:
            return True
        return bool(self.malaysian) and not self.currencies and not self.foreign_place

    @property
    def foreign_place(self) -> bool:
        """A foreign address; a month-first date alone may be an OCR slip, not a place."""
        return any(s.endswith("_address") for s in self.foreign)


def read_origin(rows: Sequence[Row]) -> Origin:
    """Currency and place signals of a receipt's rows."""
    text = "\n".join(r.text.upper() for r in rows)
    found = {code for code, rx in _CURRENCY_RES.items() if rx.search(text)}
    found |= {"CNY" if code == "RMB" else code for code, rx in _CODE_RES.items() if rx.search(text)}
    if _WORDS.search(text):
        found.add("MYR")
    currencies = frozenset(found)
    bare_dollar = bool(_BARE_DOLLAR.search(text))
    malaysian = tuple(name for name, rx in _MALAYSIAN.items() if rx.search(text))
    foreign = [name for name, rx in _FOREIGN.items() if rx.search(text)]
    if any(m.month_first for r in rows for m in find_dates(r.text)):
        foreign.append("month_first_date")
    return Origin(currencies, bare_dollar, malaysian, tuple(foreign))


@dataclass(frozen=True)
class CurrencyResult:
    """The claim's currency, how sure we are, and why it needs a person if it does."""

    value: str | None
    confidence: float
    reason: str | None = None  # "foreign_currency" | "currency_unconfirmed"
    message: str = ""


def decide_currency(origin: Origin, home: str = "MYR") -> CurrencyResult:
    """``home`` unless the receipt prints another currency or looks printed abroad."""
    others = sorted(origin.currencies - {home})
    if others:
        shown = ", ".join(others)
        return CurrencyResult(
            others[0] if len(others) == 1 and home not in origin.currencies else None,
            0.8,
            "foreign_currency",
            f"The receipt prints amounts in {shown}, not {home}.",
        )
    if home in origin.currencies:
        return CurrencyResult(home, 0.99)
    home_is_dollar = home in DOLLAR_CURRENCIES
    if origin.bare_dollar and not home_is_dollar and not _at_home(origin, home):
        return CurrencyResult(
            None,
            0.5,
            "foreign_currency",
            f"Amounts are printed with $ and nothing says {home}.",
        )
    if origin.foreign and not _at_home(origin, home):
        signals = ", ".join(s.replace("_", " ") for s in origin.foreign)
        return CurrencyResult(
            None,
            0.5,
            "currency_unconfirmed",
            f"No currency is printed and the receipt looks foreign ({signals}).",
        )
    if home == "MYR" and not origin.malaysian:
        # Ringgit is assumed only for a receipt that reads Malaysian: a foreign one often
        # prints no currency either (a bare "12.50", or its symbol lost to the photo).
        return CurrencyResult(
            None,
            0.5,
            "currency_unconfirmed",
            "No currency is printed and nothing on the receipt says it is Malaysian.",
        )
    return CurrencyResult(home, 0.9)


def _at_home(origin: Origin, home: str) -> bool:
    """Whether the place signals say the receipt was printed where ``home`` is spent."""
    return home == "MYR" and bool(origin.malaysian) and not origin.foreign_place
