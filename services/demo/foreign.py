"""Synthetic receipts printed outside Malaysia, for checking that they go to review.

Members claim for care abroad too; such a receipt must reach a person (its currency, its
date order), never NCB as a ringgit claim. Each country here prints its own currency,
address, tax and date order. With ``symbol=False`` the amounts carry no currency at all,
as when a till prints none or a photo loses the symbol: the hardest case, where only the
place says the receipt is not Malaysian. All names and addresses are invented.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal

from services.demo.receipts import ReceiptItem, ReceiptSpec


@dataclass(frozen=True)
class Country:
    """How receipts of one country look."""

    currency: str  # ISO code of its amounts
    money_styles: tuple[str, ...]  # with the currency printed ("12.50" is the amount)
    plain_style: str  # no currency printed ("12.50", or "12,50" with a decimal comma)
    date_formats: tuple[str, ...]  # ``services.demo.receipts.format_date`` styles
    tax_label: str
    tax_rates: tuple[str, ...]
    addresses: tuple[tuple[str, ...], ...]
    providers: tuple[str, ...]
    phones: tuple[str, ...]
    titles: tuple[str, ...] = ("RECEIPT", "SALES RECEIPT")
    invoice_labels: tuple[str, ...] = ("Receipt No", "Invoice #", "Ref")
    date_label: str = "Date"
    card_labels: tuple[str, ...] = ("VISA", "MASTERCARD")


COUNTRIES: dict[str, Country] = {
    "US": Country(
        "USD",
        ("$12.50", "USD 12.50", "US$12.50"),
        "12.50",
        ("mm/dd/yyyy", "mm/dd/yy", "Mon dd, yyyy"),
        "Sales Tax",
        ("0", "0.0625", "0.08875"),
        (
            ("1420 Main Street", "Springfield, IL 62704"),
            ("350 Fifth Avenue", "New York, NY 10118"),
            ("2200 Mission St", "San Francisco, CA 94110"),
        ),
        ("Main Street Family Clinic", "Walden Pharmacy", "Bay Urgent Care", "Smile Dental Group"),
        ("(217) 555-0134", "(415) 555-0199"),
    ),
    "GB": Country(
        "GBP",
        ("£12.50", "GBP 12.50"),
        "12.50",
        ("dd/mm/yyyy", "dd/mm/yy"),
        "VAT",
        ("0", "0.20"),
        (("12 High Street", "London SW1A 1AA"), ("48 Deansgate", "Manchester M3 2EG")),
        ("High Street Pharmacy", "Deansgate Medical Centre", "Kingsway Dental Practice"),
        ("020 7946 0018", "0161 496 0321"),
    ),
    "DE": Country(
        "EUR",
        ("12,50 €", "EUR 12,50"),
        "12,50",
        ("dd.mm.yyyy", "dd.mm.yy"),
        "MwSt",
        ("0.07", "0.19"),
        (("Hauptstrasse 5", "10115 Berlin"), ("Marienplatz 8", "80331 Muenchen")),
        ("Apotheke am Markt", "Praxis Dr. Weber", "Zahnarztpraxis Lindenhof"),
        ("030 1234567", "089 7654321"),
        titles=("RECHNUNG", "QUITTUNG"),
        invoice_labels=("Beleg-Nr", "Rechnung Nr"),
        date_label="Datum",
        card_labels=("EC-KARTE", "VISA"),
    ),
    "FR": Country(
        "EUR",
        ("12,50 €", "12,50 EUR"),
        "12,50",
        ("dd/mm/yyyy", "dd/mm/yy"),
        "TVA",
        ("0.055", "0.20"),
        (("12 rue de Rivoli", "75004 Paris"), ("5 place Bellecour", "69002 Lyon")),
        ("Pharmacie du Centre", "Cabinet Medical Rivoli"),
        ("01 42 72 00 00", "04 78 37 00 00"),
        titles=("FACTURE", "TICKET"),
        invoice_labels=("Facture No", "Ticket"),
        card_labels=("CB", "VISA"),
    ),
    "SG": Country(
        "SGD",
        ("S$12.50", "SGD 12.50"),
        "12.50",
        ("dd/mm/yyyy", "dd Mon yyyy"),
        "GST",
        ("0.08", "0.09"),
        (
            ("1 Orchard Road", "#02-15", "Singapore 238801"),
            ("10 Tampines Central", "Singapore 529536"),
        ),
        ("Raffles Family Clinic", "Orchard Pharmacy", "Tampines Dental Centre"),
        ("+65 6123 4567", "+65 6789 0123"),
        titles=("TAX INVOICE", "RECEIPT"),
    ),
    "AU": Country(
        "AUD",
        ("$12.50", "A$12.50", "AUD 12.50"),
        "12.50",
        ("dd/mm/yyyy", "dd/mm/yy"),
        "GST",
        ("0.10",),
        (("200 George Street", "Sydney NSW 2000"), ("45 Collins Street", "Melbourne VIC 3000")),
        ("Harbour Medical Centre", "Collins Street Chemist", "Southbank Physio"),
        ("(02) 9123 4567", "(03) 9876 5432"),
        titles=("TAX INVOICE", "RECEIPT"),
    ),
}

_ITEMS = (
    ("Consultation", 30.0, 120.0),
    ("Paracetamol 500mg x20", 3.0, 9.0),
    ("Ibuprofen 200mg x24", 4.0, 11.0),
    ("Cough syrup 100ml", 6.0, 14.0),
    ("Antibiotic course", 12.0, 35.0),
    ("Dental check-up", 40.0, 150.0),
    ("X-ray", 60.0, 220.0),
    ("Physiotherapy session", 45.0, 110.0),
    ("Bandages", 2.0, 8.0),
)


def foreign_spec(rng: random.Random, country: str, *, symbol: bool = True) -> ReceiptSpec:
    """A receipt from ``country`` (a key of ``COUNTRIES``), paid by card.

    ``symbol``: whether its amounts show the currency. The same ``rng`` state gives the
    same receipt.
    """
    c = COUNTRIES[country]
    when = date.fromordinal(
        rng.randint(date(2017, 1, 1).toordinal(), date(2025, 12, 31).toordinal())
    )
    items = tuple(
        ReceiptItem(desc, Decimal(f"{rng.uniform(low, high):.2f}"), rng.randint(1, 2))
        for desc, low, high in rng.sample(_ITEMS, rng.randint(1, 3))
    )
    return ReceiptSpec(
        provider_name=rng.choice(c.providers),
        address_lines=rng.choice(c.addresses),
        invoice_number=f"{rng.randint(1000, 999_999):06d}",
        date=when,
        items=items,
        phone=rng.choice(c.phones),
        title=rng.choice(c.titles),
        invoice_label=rng.choice(c.invoice_labels),
        date_label=c.date_label,
        date_format=rng.choice(c.date_formats),
        time=time(rng.randint(8, 20), rng.randint(0, 59)),
        tax_rate=Decimal(rng.choice(c.tax_rates)),
        tax_label=c.tax_label,
        cash=None,
        card_label=rng.choice(c.card_labels),
        currency_style=rng.choice(c.money_styles) if symbol else c.plain_style,
        currency=c.currency,
        footer_lines=("Thank you",),
    )
