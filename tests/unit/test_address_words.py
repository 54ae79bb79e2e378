"""Header words misread by one doubted character are put right; certain reads stay."""

from __future__ import annotations

import pytest

from services.extraction.address_words import DOUBTED, correct_address, correct_company


def _confs(text: str, doubted: str = "") -> list[float]:
    """Confidence 1.0 for each character, 0.6 where ``doubted`` marks it with '^'."""
    return [0.6 if mark == "^" else 1.0 for mark in doubted.ljust(len(text))]


@pytest.mark.parametrize(
    ("read", "doubted", "meant"),
    [
        ("12, JAIAN TAMPOI 7/4", "      ^", "12, JALAN TAMPOI 7/4"),
        ("47400 PETALINC JAYA", "             ^", "47400 PETALING JAYA"),
        ("SUBANG JAYA, SELENGOR", "                ^", "SUBANG JAYA, SELANGOR"),
        ("NO 29O, JALAN AIR PANAS", "     ^", "NO 290, JALAN AIR PANAS"),
        ("TAMAN BERKELEY 4115O KLANG", "                   ^", "TAMAN BERKELEY 41150 KLANG"),
    ],
)
def test_a_doubted_misread_is_put_right(read: str, doubted: str, meant: str) -> None:
    assert correct_address(read, _confs(read, doubted)) == meant


@pytest.mark.parametrize(
    ("read", "doubted"),
    [
        ("JALAN PERMAS UTARA 1", ""),  # a real word one letter from UTAMA, read with certainty
        ("LAMAN RIMBUNAN KEPONG", ""),  # likewise TAMAN
        ("12, JAIAN TAMPOI", ""),  # a misread the recogniser was sure of stays as read
        ("NO 2O", ""),
        ("JALAN BAYAN LEPAS", "      ^^^"),  # a name two letters from any known word
        ("NO. 5, LOT 3", "^^   ^ ^^^"),  # NO is a word, not a number; short words stay
    ],
)
def test_certain_reads_and_unknown_words_stay_as_read(read: str, doubted: str) -> None:
    assert correct_address(read, _confs(read, doubted)) == read


def test_confidences_that_do_not_match_the_text_change_nothing() -> None:
    assert correct_address("JAIAN", [0.1, 0.1]) == "JAIAN"
    assert DOUBTED < 1.0


@pytest.mark.parametrize(
    ("read", "meant"),
    [
        ("SUN VICTORY SON BHD", "SUN VICTORY SDN BHD"),
        ("AMANO MALAYSIA SDN BHO", "AMANO MALAYSIA SDN BHD"),
        ("99 SPEED MART S/8", "99 SPEED MART S/B"),
        ("SONY CENTRE", "SONY CENTRE"),
        ("MR. D.I.Y. (M) SDN BHD", "MR. D.I.Y. (M) SDN BHD"),
    ],
)
def test_a_misread_legal_suffix_is_put_right(read: str, meant: str) -> None:
    assert correct_company(read) == meant
