"""Claimant details from subject and body: English and Malay phrasings, forwards, signatures."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mail.claimant import MAX_TEXT_CHARS, ClaimantDetails, extract_claimant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Policy No: POL-12345", "POL-12345"),
        ("Policy No. POL-12345", "POL-12345"),
        ("Policy No.: pol-12345.", "POL-12345"),
        ("Policy Number - P12345678", "P12345678"),
        ("Policy Number is MYP/2023/001234", "MYP/2023/001234"),
        ("Policy #88990011", "88990011"),
        ("policy#: 88990011", "88990011"),
        ("Policy: POL-67890", "POL-67890"),
        ("Pol. No: 5566778", "5566778"),
        ("No. Polisi: POL-12345", "POL-12345"),
        ("No Polisi POL-12345", "POL-12345"),
        ("Nombor Polisi : 7001234567", "7001234567"),
        ("Polisi No: AB-0091234", "AB-0091234"),
        ("POLICY NO：POL-12345", "POL-12345"),  # full-width colon from a CJK keyboard
    ],
)
def test_policy_number_phrasings(text: str, expected: str) -> None:
    assert extract_claimant("", text).policy_number == expected
    assert extract_claimant(f"Claim - {text}", "").policy_number == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Member ID: MB-220145", "MB-220145"),
        ("Member No. 00123456", "00123456"),
        ("Membership No: A1234567", "A1234567"),
        ("Member Number MB220145", "MB220145"),
        ("Member #: 445566", "445566"),
        ("No. Ahli: MB-310872", "MB-310872"),
        ("ID Ahli - 99887766", "99887766"),
        ("Nombor Ahli: MB-310872", "MB-310872"),
        ("No. Keahlian: K-2023-0042", "K-2023-0042"),
    ],
)
def test_member_id_phrasings(text: str, expected: str) -> None:
    assert extract_claimant("", text).member_id == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Member Name: Ahmad Faizal bin Ismail", "Ahmad Faizal bin Ismail"),
        ("Nama Ahli: Siti Aminah binti Hassan", "Siti Aminah binti Hassan"),
        ("Nama: Rajesh a/l Kumar", "Rajesh a/l Kumar"),
        ("Name: Tan Mei Ling", "Tan Mei Ling"),
        ("name : O'Neil Fernandez.", "O'Neil Fernandez"),
        ("Nama Penuh: Nur Aisyah @ Aishah binti Abdullah", "Nur Aisyah @ Aishah binti Abdullah"),
        ("Full name: Muthu a/p Letchumanan", "Muthu a/p Letchumanan"),
        ("Claimant Name - Wong Siew Ling (黄秀玲)", "Wong Siew Ling"),
        ("Nama Ahli: Wong Siew Ling, No. Ahli: MB-1234", "Wong Siew Ling"),
        ("Name: Lim Wei Jie   Member ID: MB-9988", "Lim Wei Jie"),
        ("Name: Lim Wei Jie Policy No: POL-9988", "Lim Wei Jie"),
        ("  - Name: Aina Sofea", "Aina Sofea"),  # a bulleted list
        ("• Nama: Aina Sofea", "Aina Sofea"),
    ],
)
def test_member_name_phrasings(text: str, expected: str) -> None:
    assert extract_claimant("", text).member_name == expected


def test_all_three_in_a_malay_email() -> None:
    body = (
        "Assalamualaikum tuan/puan,\n\n"
        "Bersama-sama ini saya lampirkan resit klinik.\n\n"
        "Nama Ahli : Siti Aminah binti Hassan\n"
        "No. Polisi : POL-60417\n"
        "ID Ahli : MB-310872\n\n"
        "Terima kasih.\n"
    )
    assert extract_claimant("Tuntutan perubatan", body) == ClaimantDetails(
        policy_number="POL-60417", member_id="MB-310872", member_name="Siti Aminah binti Hassan"
    )


def test_all_on_one_subject_line() -> None:
    got = extract_claimant(
        "Claim | Policy No: POL-1 2345 | Member ID: MB-77 | Name: Ali bin Abu", ""
    )
    assert got.member_id is None  # "MB-77" has too few digits to be an id
    assert got.member_name == "Ali bin Abu"
    got = extract_claimant("Policy No: POL-58213 / Member ID: MB-220145", "")
    assert (got.policy_number, got.member_id) == ("POL-58213", "MB-220145")


def test_subject_wins_over_body() -> None:
    got = extract_claimant("Policy No: POL-11111", "Policy No: POL-22222")
    assert got.policy_number == "POL-11111"


def test_own_text_wins_over_forwarded_email() -> None:
    body = (
        "Please process. Policy No: POL-11111\n\n"
        "---------- Forwarded message ---------\n"
        "From: Agent <agent@insurer.example>\n"
        "Date: Mon, 1 Jul 2024\n\n"
        "Policy No: POL-99999\nMember ID: MB-555555\nMember Name: Someone Else\n"
    )
    got = extract_claimant("Fwd: claim", body)
    assert got.policy_number == "POL-11111"
    # what the member did not say is taken from the forwarded email, as a fallback
    assert got.member_id == "MB-555555"
    assert got.member_name == "Someone Else"


@pytest.mark.parametrize(
    "header",
    [
        "---------- Forwarded message ---------\nFrom: a@b.c",
        "-----Original Message-----\nFrom: a@b.c",
        "Begin forwarded message:\n\nFrom: a@b.c",
        "---------- Mesej dimajukan ---------\nDari: a@b.c",
        "On Mon, 1 Jul 2024 at 10:00, Clinic <a@b.c> wrote:",
        "Pada Isn, 1 Jul 2024 10:00, Klinik <a@b.c> menulis:",
        "From: Clinic <a@b.c>\nSent: Monday, 1 July 2024 10:00",
    ],
)
def test_forward_and_reply_headers_split_the_body(header: str) -> None:
    body = f"Name: Ali bin Abu\n\n{header}\n\nName: Clinic Staff\nPolicy No: POL-424242\n"
    got = extract_claimant("", body)
    assert got.member_name == "Ali bin Abu"
    assert got.policy_number == "POL-424242"


def test_quoted_reply_lines_are_a_fallback_only() -> None:
    body = "Here you go\nMember ID: MB-123456\n\n> Member ID: MB-000000\n> Policy No: POL-31337\n"
    got = extract_claimant("Re: missing details", body)
    assert got.member_id == "MB-123456"
    assert got.policy_number == "POL-31337"


def test_signatures_are_not_mistaken_for_claimant_details() -> None:
    body = (
        "Hi, receipt attached.\n\n"
        "Thanks,\nAhmad\n"
        "-- \n"
        "Ahmad Faizal | Senior Executive\n"
        "Syarikat Contoh Sdn Bhd (Co. No: 123456-X)\n"
        "SST No: W10-1808-32000123\n"
        "Tel: +60 3-7788 9900  Fax: 03-7788 9901\n"
        "Member of the Malaysian Institute of Accountants (MIA No. 123456)\n"
        "Privacy Policy: https://example.com/privacy-2024\n"
    )
    assert extract_claimant("Medical claim", body) == ClaimantDetails()


def test_forwarded_clinic_signature_is_never_read() -> None:
    body = (
        "Forwarding the clinic's email. Member ID: MB-660301\n\n"
        "---------- Forwarded message ---------\n"
        "From: Klinik <billing@klinik.example>\n\n"
        "Dear patient, your receipt is attached.\n"
        "-- \nKlinik Sejahtera\nName: Front Desk\nPolicy No: 8877665544\n"
    )
    got = extract_claimant("Fwd: receipt", body)
    assert got == ClaimantDetails(member_id="MB-660301")


def test_members_own_signature_is_read_after_the_main_text() -> None:
    body = "Receipt attached.\n-- \nAli bin Abu\nMember ID: MB-778899\n"
    assert extract_claimant("claim", body).member_id == "MB-778899"


@pytest.mark.parametrize(
    "text",
    [
        "Patient Name: Adam bin Ali",  # the patient may be a dependant, not the member
        "File name: receipt_001.jpg",
        "Username: ahmad88",
        "Nama Syarikat: Contoh Sdn Bhd",
        "Nama Klinik: Klinik Sejahtera",
        "Company name: Contoh Sdn Bhd",
        "Name: please see attached",
        "Nama: sila rujuk lampiran",
        "Name: 123456",
    ],
)
def test_names_that_are_not_the_member(text: str) -> None:
    assert extract_claimant("", text).member_name is None


@pytest.mark.parametrize(
    "text",
    [
        "Invoice No: INV-2024-0001",
        "Receipt No: R123456",
        "IC No: 880101-14-5678",
        "Reg No: 201801012345",
        "Policy No: will send later",
        "Policy No: N/A",
        "Policy No: -",
        "Member ID: pending",
        "Policy No: 12",
        "our policy: reply within 3 days",
    ],
)
def test_values_that_are_not_ids(text: str) -> None:
    got = extract_claimant("", text)
    assert got.policy_number is None and got.member_id is None


def test_later_valid_value_is_used_when_the_first_label_is_empty() -> None:
    body = "Policy No: (see below)\n\nSorry, here it is: Policy No: POL-24680"
    assert extract_claimant("", body).policy_number == "POL-24680"


def test_crlf_and_html_derived_text() -> None:
    body = "Hello,\r\n\r\nPolicy Number: POL-71150\r\nName: Tan Mei Ling\r\n\r\nRegards"
    assert extract_claimant("", body) == ClaimantDetails("POL-71150", None, "Tan Mei Ling")


def test_empty_input() -> None:
    assert extract_claimant("", "") == ClaimantDetails(None, None, None)


# --- linear time on hostile text ------------------------------------------------------

#: Generous bound for ~200 KB of text on a slow 2-core CI machine (it takes milliseconds).
TIME_LIMIT_S = 1.0

WORST_CASES = {
    "blank lines after a label": "Policy No: POL-12345" + "\n" * 30_000 + "Thanks",
    "blank lines after a label, CRLF": "Policy No: X\r\n" + "\r\n" * 60_000 + "x",
    "spaces after a label": "Name:" + " " * 100_000 + "Ali",
    "spaces after a label word without a colon": "name" + " " * 200_000 + "x",
    "spaces after policy": "policy" + " " * 200_000 + "x",
    "spaces after a member label": "no" + " " * 200_000 + "ahli",
    "tabs and newlines after a label": "Policy No:" + " \t\n" * 60_000 + "x",
    "repeated labels on lines": "Policy No: -\n" * 15_000,
    "repeated labels on one line": "Policy No: - " * 15_000,
    "repeated name labels on one line": "Name: a, " * 20_000,
    "long token": "Policy No: " + "A1-" * 60_000,
    "long token of separators": "Policy No: A" + "-" * 200_000,
    "long name": "Name: " + "Ab " * 60_000,
    "nested quotes": "> " * 100_000 + "Policy No: POL-1",
    "quoted lines": "> Policy No: -\n" * 15_000,
    "forward headers": "From: x\n" * 25_000,
    "from without sent": "From: " + "x" * 200_000,
    "wrote lines": ("On " + "x" * 150 + "\n") * 1_300,
    "signature markers": "-- \n" * 50_000,
    "dashes": "-" * 200_000,
    "separators then spaces": ("," + " " * 1000) * 200,
    "many colons": "name" + " :" * 100_000,
}


@pytest.mark.parametrize("text", WORST_CASES.values(), ids=WORST_CASES.keys())
def test_extraction_is_linear_on_worst_cases(text: str) -> None:
    start = time.perf_counter()
    extract_claimant(text[:2000], text)
    extract_claimant("", "Hello\n" + text + "\nPolicy No: POL-24680")
    assert time.perf_counter() - start < TIME_LIMIT_S


def test_blank_lines_after_a_label_still_find_the_value() -> None:
    assert extract_claimant("", WORST_CASES["blank lines after a label"]).policy_number == (
        "POL-12345"
    )


def test_only_the_start_of_a_long_body_is_read() -> None:
    filler = "Lorem ipsum dolor sit amet.\n" * (MAX_TEXT_CHARS // 20)
    assert extract_claimant("", "Policy No: POL-11111\n" + filler).policy_number == "POL-11111"
    assert extract_claimant("", filler + "Policy No: POL-22222").policy_number is None


def test_overlong_identifiers_are_not_taken() -> None:
    assert extract_claimant("", "Policy No: " + "A1" * 40).policy_number is None


_FRAGMENTS = [
    "Policy No:", "Member ID:", "Name:", "Nama Ahli:", "No. Polisi", "POL-12345", "Ali bin Abu",
    " ", "  ", "\t", "\n", "\r\n", "\n\n", ">", "> ", "-- \n", ":", "-", "—", ",", "|", "is",
    "From: a@b.c\n", "Sent: today\n", "On Mon, a <b> wrote:\n", "---------- Forwarded message",
    "x", "1", "@", "’", "(", "\u202e", "\x00",
]  # fmt: skip


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_FRAGMENTS), st.integers(min_value=1, max_value=4000)),
        min_size=1,
        max_size=12,
    )
)
def test_extraction_time_is_bounded_on_generated_text(pieces: list[tuple[str, int]]) -> None:
    text = "".join(fragment * count for fragment, count in pieces)[:200_000]
    start = time.perf_counter()
    got = extract_claimant(text[:1000], text)
    assert time.perf_counter() - start < TIME_LIMIT_S
    for value in (got.policy_number, got.member_id):
        assert value is None or len(value) <= 40
    assert got.member_name is None or len(got.member_name) <= 80
