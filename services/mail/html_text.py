"""HTML email bodies to plain text, with the line structure kept, in linear time.

Line breaks matter downstream: the claimant parser reads "Label: value" per line.

A small scanner rather than ``html.parser.HTMLParser``: on CPython before 3.13.4/3.12.11
that parser is quadratic on unterminated constructs (50,000 ``<!--`` took three minutes),
and a hostile email must not stall the inbox. Every step here consumes input, never
rescans it: an unterminated comment, tag or script swallows the rest of the document, as
browsers do at end of input.
"""

from __future__ import annotations

import html
import re

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
        "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
# Elements whose content is never shown (raw text, or not rendered).
_SKIP_TAGS = frozenset({"script", "style", "title", "template"})

_TAG_NAME = re.compile(r"</?([A-Za-z][^\t\n\f\r />]*)")
# The rest of a tag up to its ">", quoted attribute values (which may hold ">") included.
# Character classes never overlap, so a failed match costs one pass, not a backtrack storm.
_TAG_REST = re.compile(r"""[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML document; one line per block element."""
    parts: list[str] = []
    pos, size = 0, len(markup)
    while pos < size:
        lt = markup.find("<", pos)
        if lt < 0:
            parts.append(html.unescape(markup[pos:]))
            break
        parts.append(html.unescape(markup[pos:lt]))
        pos = _skip_markup(markup, lt, parts)
    text = "".join(parts).replace("\xa0", " ")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _skip_markup(markup: str, lt: int, parts: list[str]) -> int:
    """Consume the markup starting at ``markup[lt] == "<"``; return where text resumes."""
    size = len(markup)
    if markup.startswith("<!--", lt):
        end = markup.find("-->", lt + 4)
        return size if end < 0 else end + 3
    name = _TAG_NAME.match(markup, lt)
    if name is None:
        if markup.startswith(("<!", "<?", "</"), lt):  # declaration, PI, bogus comment
            end = markup.find(">", lt + 2)
            return size if end < 0 else end + 1
        parts.append("<")  # "a < b": a literal "<"
        return lt + 1
    rest = _TAG_REST.match(markup, name.end())
    if rest is None:
        return size  # a tag left open at the end: nothing after it is text
    tag = name.group(1).lower()
    closing = markup.startswith("</", lt)
    if tag in _BLOCK_TAGS:
        parts.append("\n")
    if tag in _SKIP_TAGS and not closing and not rest.group(0).endswith("/>"):
        return _skip_element(markup, tag, rest.end())
    return rest.end()


def _skip_element(markup: str, tag: str, pos: int) -> int:
    """Past the end tag of a raw-text element (script, style...), or to the end."""
    end_tag = re.compile(rf"</{tag}(?=[\t\n\f\r />])|</{tag}$", re.IGNORECASE)
    found = end_tag.search(markup, pos)
    if found is None:
        return len(markup)
    close = markup.find(">", found.end())
    return len(markup) if close < 0 else close + 1
