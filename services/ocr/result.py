"""What an OCR engine returns for a page.

Plain dataclasses with no library imports, so the extraction domain can use them
without pulling in any OCR runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Point = tuple[float, float]


def quad(points: Iterable[Iterable[float]]) -> tuple[Point, Point, Point, Point]:
    """A ``TextLine.box`` from four (x, y) pairs of any numbers (numpy rows, JSON lists)."""
    tl, tr, br, bl = ((float(x), float(y)) for x, y in points)
    return tl, tr, br, bl


@dataclass(frozen=True)
class TextLine:
    """One recognised line of text on a page.

    ``box`` holds four corners (top-left, top-right, bottom-right, bottom-left) in
    page pixels. ``char_confidences`` has one recognition probability per character
    of ``text`` so callers can score just the characters that carry a value.
    """

    text: str
    box: tuple[Point, Point, Point, Point]
    confidence: float
    char_confidences: tuple[float, ...] = field(default=())

    @property
    def left(self) -> float:
        return min(p[0] for p in self.box)

    @property
    def right(self) -> float:
        return max(p[0] for p in self.box)

    @property
    def top(self) -> float:
        return min(p[1] for p in self.box)

    @property
    def bottom(self) -> float:
        return max(p[1] for p in self.box)

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center_y(self) -> float:
        return (self.top + self.bottom) / 2

    def span_confidence(self, start: int, end: int) -> float:
        """Lowest character confidence in ``text[start:end]`` (the weakest link)."""
        confs = self.char_confidences[start:end]
        if not confs:
            return self.confidence
        return min(confs)


@dataclass(frozen=True)
class PageText:
    """All lines read on one page, in reading order (top to bottom, left to right).

    ``turns`` counts the clockwise quarter turns the engine gave the page it was handed
    before reading it (a sideways or upside-down scan). ``width``, ``height`` and every
    box are of that turned, upright page, which is what layout rules need;
    :meth:`to_input` and :attr:`input_size` give a point and the size on the page as
    handed in, which is the image a person is shown.
    """

    width: int
    height: int
    lines: tuple[TextLine, ...]
    turns: int = 0

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the page as handed to the engine."""
        if self.turns % 2:
            return self.height, self.width
        return self.width, self.height

    def to_input(self, point: Point) -> Point:
        """``point`` of this (turned) page in the pixels of the page as handed in."""
        x, y = point
        width, height = self.width, self.height
        for _ in range(self.turns % 4):
            # One clockwise turn took input (x, y) of a W x H page to (H - y, x) on an
            # H x W page; undo it.
            x, y = y, width - x
            width, height = height, width
        return x, y


def page_to_json(page: PageText) -> dict[str, Any]:
    """A page's OCR output as JSON, so evaluation can re-score extraction without OCR."""
    return {
        "width": page.width,
        "height": page.height,
        "turns": page.turns,
        "lines": [
            {
                "text": ln.text,
                "box": [list(p) for p in ln.box],
                "confidence": ln.confidence,
                "char_confidences": list(ln.char_confidences),
            }
            for ln in page.lines
        ],
    }


def page_from_json(obj: dict[str, Any]) -> PageText:
    """The inverse of :func:`page_to_json` (``turns`` and character confidences optional)."""
    lines = tuple(
        TextLine(
            ln["text"],
            quad(ln["box"]),
            float(ln["confidence"]),
            tuple(float(c) for c in ln.get("char_confidences") or ()),
        )
        for ln in obj["lines"]
    )
    return PageText(int(obj["width"]), int(obj["height"]), lines, int(obj.get("turns", 0)))


def reading_order(lines: Sequence[TextLine]) -> tuple[TextLine, ...]:
    """Top-to-bottom rows, left-to-right within a row.

    A line joins the current row when its vertical centre lies within half a line
    height of the row's, so slightly skewed receipts keep "TOTAL ... 12.50" together.
    """
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.center_y, ln.left)):
        if rows:
            row = rows[-1]
            row_center = sum(ln.center_y for ln in row) / len(row)
            row_height = min(ln.height for ln in row)
            if abs(line.center_y - row_center) <= 0.5 * min(line.height, row_height):
                row.append(line)
                continue
        rows.append([line])
    return tuple(ln for row in rows for ln in sorted(row, key=lambda ln: ln.left))
