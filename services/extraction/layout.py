"""Visual rows: OCR lines regrouped by their vertical band.

OCR engines often split one printed row ("TOTAL" ... "12.50") into separate boxes and
return them in an order that is not reading order. Field rules reason about *rows*, so
lines whose vertical extents overlap are merged left-to-right into one `Row` whose text
keeps a per-character confidence, letting a rule score exactly the characters it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from services.ocr.result import PageText, TextLine

# Two boxes share a row when their vertical overlap covers this share of the shorter box.
_ROW_OVERLAP = 0.5


@dataclass(frozen=True)
class Row:
    """One visual row of a page: its text, a confidence per character, and its geometry."""

    text: str
    confs: tuple[float, ...]
    page: int
    index: int  # position of the row in the document (all pages), top to bottom
    top: float
    bottom: float
    left: float
    right: float
    rel_y: float  # centre of the row as a share of page height (0 top, 1 bottom)
    rel_left: float  # left edge as a share of page width
    segments: tuple[tuple[int, float, float], ...]  # (start offset in text, left, right)
    # The OCR lines the row was joined from, one per segment (where a value was read).
    lines: tuple[TextLine, ...] = field(default=(), compare=False, repr=False)

    def span_confidence(self, start: int, end: int) -> float:
        """Weakest character confidence in ``text[start:end]`` ignoring spaces we added."""
        confs = [
            c
            for ch, c in zip(self.text[start:end], self.confs[start:end], strict=False)
            if ch != " "
        ]
        return min(confs) if confs else 0.0

    def value_confidence(self, start: int, end: int) -> float:
        """Weakest letter or digit in ``text[start:end]``: a date's separators ("/", "-")
        carry none of its value, and a doubted one cannot change the date it parsed as."""
        confs = [
            c
            for ch, c in zip(self.text[start:end], self.confs[start:end], strict=False)
            if ch.isalnum()
        ]
        return min(confs) if confs else 0.0

    def x_at(self, offset: int) -> float:
        """Approximate page x of character ``offset`` (by linear spread inside its box)."""
        seg_start, left, right = self.segments[0]
        seg_end = len(self.text)
        for i, seg in enumerate(self.segments):
            if seg[0] <= offset:
                seg_start, left, right = seg
                seg_end = self.segments[i + 1][0] - 1 if i + 1 < len(self.segments) else seg_end
        width = max(seg_end - seg_start, 1)
        return left + (right - left) * (offset - seg_start) / width

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def lines_in(self, start: int, end: int) -> tuple[TextLine, ...]:
        """The OCR lines that characters ``text[start:end]`` were read from."""
        return tuple(
            line
            for (seg_start, _, _), line in zip(self.segments, self.lines, strict=True)
            if seg_start < end and seg_start + len(line.text) > start
        )


@dataclass(frozen=True)
class Span:
    """Characters ``start:end`` of ``row``: where on the page a field's value was read."""

    row: Row
    start: int
    end: int

    @classmethod
    def whole(cls, row: Row) -> Span:
        return cls(row, 0, len(row.text))


def _line_confs(line: TextLine) -> list[float]:
    if len(line.char_confidences) == len(line.text):
        return list(line.char_confidences)
    return [line.confidence] * len(line.text)


def _skew(lines: Sequence[TextLine]) -> float:
    """Median slope (dy/dx) of the top edges of wide boxes: how the page is rotated.

    Photographed receipts are often a little rotated; without correcting for it, an
    amount at the right margin drifts into the band of the row above or below its label.
    """
    slopes = []
    for ln in lines:
        (x0, y0), (x1, y1) = ln.box[0], ln.box[1]
        if x1 - x0 > 3 * max(ln.height, 1.0):
            slopes.append((y1 - y0) / (x1 - x0))
    if not slopes:
        return 0.0
    slopes.sort()
    return slopes[len(slopes) // 2]


def _band(line: TextLine, skew: float) -> tuple[float, float]:
    """The line's vertical extent after undoing the page rotation about x = 0.

    Each corner is deskewed on its own: the upright box of a wide line on a turned page
    is taller than the line by its width times the slope (60 px for a 400 px line at 8
    degrees), enough to swallow the rows above and below it.
    """
    ys = [y - skew * x for x, y in line.box]
    return min(ys), max(ys)


def _overlap(band: tuple[float, float], top: float, bottom: float) -> float:
    inter = min(band[1], bottom) - max(band[0], top)
    shorter = max(min(band[1] - band[0], bottom - top), 1e-6)
    return inter / shorter


def _group(lines: Sequence[TextLine], skew: float) -> list[list[TextLine]]:
    """Greedy banding by (deskewed) vertical overlap, scanning lines from top to bottom."""
    groups: list[list[TextLine]] = []
    bands: list[tuple[float, float]] = []
    for line in sorted(lines, key=lambda ln: (sum(_band(ln, skew)), ln.left)):
        band = _band(line, skew)
        best, best_ov = -1, _ROW_OVERLAP
        # Only the last few bands can still overlap a line further down the page.
        for gi in range(max(0, len(groups) - 4), len(groups)):
            top, bottom = bands[gi]
            ov = _overlap(band, top, bottom)
            # The line must not already collide horizontally with a box of the row.
            if ov >= best_ov and all(
                line.left >= other.right - 2 or line.right <= other.left + 2 for other in groups[gi]
            ):
                best, best_ov = gi, ov
        if best < 0:
            groups.append([line])
            bands.append(band)
        else:
            groups[best].append(line)
            # Keep the band at the first box's extent so rows do not creep downwards.
    return groups


def build_rows(pages: Sequence[PageText]) -> list[Row]:
    """All visual rows of all pages, in reading order."""
    rows: list[Row] = []
    order: list[float] = []  # each row's deskewed centre: reading order on a turned page
    for page_no, page in enumerate(pages):
        lines = [ln for ln in page.lines if ln.text.strip()]
        height = float(page.height or max((ln.bottom for ln in lines), default=1.0) or 1.0)
        width = float(page.width or max((ln.right for ln in lines), default=1.0) or 1.0)
        skew = _skew(lines)
        for group in _group(lines, skew):
            group.sort(key=lambda ln: ln.left)
            text_parts: list[str] = []
            confs: list[float] = []
            segments: list[tuple[int, float, float]] = []
            for line in group:
                if text_parts:
                    text_parts.append(" ")
                    confs.append(1.0)
                segments.append((sum(len(p) for p in text_parts), line.left, line.right))
                text_parts.append(line.text)
                confs.extend(_line_confs(line))
            top = min(ln.top for ln in group)
            bottom = max(ln.bottom for ln in group)
            bands = [_band(ln, skew) for ln in group]
            order.append((min(b[0] for b in bands) + max(b[1] for b in bands)) / 2)
            rows.append(
                Row(
                    text="".join(text_parts),
                    confs=tuple(confs),
                    page=page_no,
                    index=0,
                    top=top,
                    bottom=bottom,
                    left=min(ln.left for ln in group),
                    right=max(ln.right for ln in group),
                    rel_y=((top + bottom) / 2) / height,
                    rel_left=min(ln.left for ln in group) / width,
                    segments=tuple(segments),
                    lines=tuple(group),
                )
            )
    ranked = sorted(zip(order, rows, strict=True), key=lambda pair: (pair[1].page, pair[0]))
    return [replace(r, index=i) for i, (_, r) in enumerate(ranked)]
