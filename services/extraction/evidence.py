"""Where each field was read: the page, the OCR line's polygon and its text.

A reviewer is shown the page image that OCR was handed (upright after EXIF rotation, at
the size ``services.ocr.pages`` decodes or renders it) with the polygon drawn over it,
so polygons are given in that image's pixels: an engine that turned a sideways page
before reading it reports boxes on the turned page, and they are mapped back here
(``PageText.to_input``). Engines already scale boxes from their detector's resized
input back to the page's own pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.extraction.layout import Span
from services.ocr.result import PageText, Point, TextLine


@dataclass(frozen=True)
class FieldEvidence:
    """One field's source on the page: ``page`` counts from 1, the polygon in its pixels."""

    page: int
    polygon: tuple[Point, ...]
    text: str
    page_width: int
    page_height: int

    def as_json(self) -> dict[str, Any]:
        """The shape stored in ``jobs.field_evidence`` and printed by ``claims-ocr extract``."""
        return {
            "page": self.page,
            "polygon": [[_number(x), _number(y)] for x, y in self.polygon],
            "text": self.text,
            "page_width": self.page_width,
            "page_height": self.page_height,
        }


def _number(value: float) -> int | float:
    value = round(value, 1)
    return int(value) if value.is_integer() else value


def locate(spans: Sequence[Span], pages: Sequence[PageText]) -> FieldEvidence | None:
    """The evidence for a value read from ``spans`` (None when no OCR line carries it).

    One source line gives that line's own four corners. A value read from several lines
    (a name or address wrapped over rows, a row split into boxes) gives the bounding box
    of all of them as a rectangle, so the whole value is outlined, and their texts in
    reading order, one per line. Only the first span's page counts: a value never
    crosses pages.
    """
    if not spans:
        return None
    page_index = spans[0].row.page
    lines: list[TextLine] = []
    for span in spans:
        if span.row.page != page_index:
            continue
        lines.extend(ln for ln in span.row.lines_in(span.start, span.end) if ln not in lines)
    if not lines:
        return None
    page = pages[page_index]
    corners = [[page.to_input(p) for p in line.box] for line in lines]
    if len(corners) == 1:
        polygon = tuple(corners[0])
    else:
        xs = [x for quad in corners for x, _ in quad]
        ys = [y for quad in corners for _, y in quad]
        left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
        polygon = ((left, top), (right, top), (right, bottom), (left, bottom))
    width, height = page.input_size
    text = "\n".join(line.text for line in lines)
    return FieldEvidence(page_index + 1, polygon, text, width, height)
