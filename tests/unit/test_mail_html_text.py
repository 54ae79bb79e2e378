"""HTML bodies to text: the line structure the claimant parser needs, in linear time."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mail.html_text import html_to_text

#: Generous bound for ~200 KB of HTML on a slow 2-core CI machine (it takes milliseconds).
TIME_LIMIT_S = 1.0


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            "<html><head><style>p{color:red}</style><script>var a=1;</script></head>"
            "<body><p>Policy No:&nbsp;POL-9&amp;1</p><div>Nama: Ali</div></body></html>",
            "Policy No: POL-9&1\n\nNama: Ali",
        ),
        ("Name: Ali<br>Policy No: P-123<br/>x", "Name: Ali\nPolicy No: P-123\nx"),
        ("<P>One</P><TABLE><TR><TD>a</TD><TD>b</TD></TR></TABLE>", "One\n\na\n\nb"),
        ("<a title=\"x > y\" href='q>r'>link</a> text", "link text"),
        ("a < b and c > d", "a < b and c > d"),
        ("before<!-- a comment <p>hidden</p> -->after", "beforeafter"),
        ("before<!-- never closed <p>hidden</p>", "before"),
        ("x<!DOCTYPE html>y<?xml version='1.0'?>z", "xyz"),
        ("<SCRIPT type=x>if (a<b) {}</SCRIPT >shown", "shown"),
        ("<title>Invoice</title><p>body</p>", "body"),
        ("<style>never closed", ""),
        ("&lt;p&gt; &#65;&#x42; &eacute; &bogus; &", "<p> AB é &bogus; &"),
        ("<p>  lots   of \t spaces  </p>", "lots of spaces"),
        ("<div>a</div>\n\n\n\n<div>b</div>", "a\n\nb"),
        ("<img src='data:image/png;base64,AAAA' alt='x'>text", "text"),
        ("unterminated <a href='x", "unterminated"),
        ("</ >x</3>y", "xy"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


PATHOLOGICAL = {
    "unterminated comments": "<!--" * 50_000,
    "tag starts": "<a" * 100_000,
    "end tag starts": "</" * 100_000,
    "processing instructions": "<?" * 100_000,
    "declarations": "<!" * 100_000,
    "cdata sections": "<![CDATA[" * 25_000,
    "angle brackets": "<" * 200_000,
    "attributes": "<a " + "x=" * 100_000,
    "open quote": '<a title="' + "x" * 200_000,
    "many quotes": "<a " + "\"'" * 100_000,
    "ampersands": "&" * 200_000,
    "entity starts": "&#" * 100_000,
    "unclosed script": "<script>" + "</" * 100_000,
    "nested blocks": "<div>" * 40_000,
    "blank lines": "\n" * 200_000,
}


@pytest.mark.parametrize("html", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_html_is_linear(html: str) -> None:
    start = time.perf_counter()
    html_to_text(html)
    assert time.perf_counter() - start < TIME_LIMIT_S


_HTML_FRAGMENTS = [
    "<", ">", "</", "<!--", "-->", "<!", "<?", "<a", "<p>", "</p>", "<br>", "<script>",
    "</script>", "<style>", "'", '"', "=", "&", "&amp;", "&#", ";", " ", "\n", "x", "Name: Ali",
]  # fmt: skip


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_HTML_FRAGMENTS), st.integers(min_value=1, max_value=5000)),
        min_size=1,
        max_size=10,
    )
)
def test_html_time_is_bounded_on_generated_markup(pieces: list[tuple[str, int]]) -> None:
    html = "".join(fragment * count for fragment, count in pieces)[:200_000]
    start = time.perf_counter()
    text = html_to_text(html)
    assert time.perf_counter() - start < TIME_LIMIT_S
    assert len(text) <= len(html)
