"""Word pools for random Malaysian receipts: providers, places, items, labels.

All provider names are invented; product names are ordinary pharmacy shelf items.
"""

from __future__ import annotations

PROVIDERS: dict[str, tuple[str, ...]] = {
    "clinic": (
        "Klinik Kesihatan Sejahtera",
        "Klinik Dr. Lim & Rakan-Rakan",
        "Poliklinik Famili Bangsar",
        "Klinik Rawatan Am Seri Murni",
        "Pusat Perubatan Ar-Rahman",
        "Klinik Keluarga Dr. Rajan",
        "Kota Medical Clinic",
    ),
    "dental": (
        "Klinik Pergigian Senyum Indah",
        "Pearl Dental Surgery",
        "Klinik Gigi Dr. Tan",
    ),
    "pharmacy": (
        "Farmasi Sihat Sentiasa",
        "Farmasi Bandar Baru Sdn Bhd",
        "Green Leaf Pharmacy",
        "Farmasi Rakyat Jaya",
        "Medicare Pharmacy (M) Sdn Bhd",
    ),
    "optical": (
        "Kedai Optik Cahaya",
        "Vision Plus Optometrist",
    ),
    "physio": (
        "Physio Plus Rehab Centre",
        "Pusat Fisioterapi Harmoni",
    ),
}

STREETS = (
    "Jalan Ampang", "Jalan Tun Razak", "Jalan SS 2/24", "Jalan Meru", "Jalan Dato Onn",
    "Jalan Bukit Bintang", "Jalan Gasing", "Jalan Kuching", "Jalan Tebrau", "Lebuh Chulia",
    "Jalan Sultan Iskandar", "Jalan Pasar Baru", "Jalan Wong Ah Fook", "Jalan Penampang",
)  # fmt: skip
AREAS = (
    "Taman Melawati", "Taman Sri Muda", "Bandar Baru Bangi", "Taman Tun Dr Ismail",
    "Taman Desa", "Bandar Sunway", "Taman Universiti", "Seksyen 13",
)  # fmt: skip
TOWNS = (
    "50450 Kuala Lumpur",
    "47300 Petaling Jaya, Selangor",
    "40100 Shah Alam, Selangor",
    "10200 George Town, Pulau Pinang",
    "80000 Johor Bahru, Johor",
    "30450 Ipoh, Perak",
    "88000 Kota Kinabalu, Sabah",
    "93100 Kuching, Sarawak",
    "75000 Melaka",
    "25200 Kuantan, Pahang",
    "15000 Kota Bharu, Kelantan",
)

#: (description, lowest price, highest price, most per receipt line)
ITEMS: dict[str, tuple[tuple[str, float, float, int], ...]] = {
    "clinic": (
        ("Consultation Fee", 30, 80, 1),
        ("Medication", 10, 60, 1),
        ("Ubat Batuk 120ml", 8, 18, 2),
        ("Paracetamol 500mg (10 tabs)", 2, 6, 3),
        ("Antibiotic Amoxicillin 250mg", 12, 30, 1),
        ("Injection", 20, 60, 1),
        ("Blood Test (FBC)", 25, 70, 1),
        ("Wound Dressing", 15, 40, 1),
        ("Nebuliser Treatment", 20, 45, 1),
        ("Caj Rawatan", 20, 50, 1),
    ),
    "dental": (
        ("Consultation", 20, 50, 1),
        ("Scaling & Polishing", 80, 180, 1),
        ("Tooth Extraction", 60, 150, 2),
        ("Dental X-Ray", 30, 80, 1),
        ("Composite Filling", 90, 200, 2),
    ),
    "pharmacy": (
        ("Panadol Actifast 20s", 9, 14, 2),
        ("Vitamin C 1000mg 30s", 18, 45, 1),
        ("Strepsils Honey Lemon 16s", 10, 16, 2),
        ("Crepe Bandage 7.5cm", 4, 9, 2),
        ("Povidone Iodine 60ml", 7, 15, 1),
        ("Face Mask 50pcs", 10, 25, 2),
        ("Antacid Suspension 150ml", 14, 28, 1),
        ("Cetirizine 10mg 10s", 8, 20, 1),
        ("ORS Oral Rehydration Salts", 1, 3, 5),
        ("Digital Thermometer", 15, 40, 1),
    ),
    "optical": (
        ("Eye Examination", 0, 50, 1),
        ("Frame", 120, 450, 1),
        ("Lens Single Vision (pair)", 150, 400, 1),
        ("Contact Lens Solution 360ml", 25, 45, 2),
    ),
    "physio": (
        ("Physiotherapy Session", 80, 150, 1),
        ("TENS Therapy", 30, 60, 1),
        ("Hot Pack Treatment", 15, 30, 1),
        ("Exercise Band", 20, 45, 1),
    ),
}

TITLES = ("RECEIPT", "OFFICIAL RECEIPT", "TAX INVOICE", "RESIT RASMI", "CASH BILL", "INVOIS")
INVOICE_LABELS = ("Invoice No", "Receipt No", "No. Resit", "Bill No", "Inv #", "No. Invois")
DATE_LABELS = ("Date", "Tarikh", "Date/Time")
TAX_LABELS = ("SST", "Service Tax", "Cukai Perkhidmatan")
CASHIERS = ("Aishah", "Mei Ling", "Kumar", "Farid", "Nurul", "Jason", "Siti")
FOOTERS = (
    ("Thank you", "Get well soon"),
    ("Terima kasih", "Semoga cepat sembuh"),
    ("Thank you. Please come again",),
    ("Goods sold are not returnable",),
    ("Terima kasih atas kunjungan anda",),
)
CARD_LABELS = ("VISA", "MASTERCARD", "DEBIT CARD", "DuitNow QR", "Touch 'n Go eWallet")
