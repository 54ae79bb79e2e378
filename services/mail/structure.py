"""Raw bytes to a MIME tree that is safe to walk: bounded, tolerant and repaired.

The standard ``email`` parser, with guard rails for what hostile or broken mail does:

- Headers are read with ``services.mail.headers.TOLERANT_POLICY``: never raising, in
  bounded time.
- Nesting and part count are capped (``MAX_DEPTH``, ``MAX_PARTS``) inside the parser,
  so a multipart nested a thousand deep never recurses a thousand deep, and a million
  tiny parts never become a million objects.
- Broken multiparts are repaired the way mail clients do, guided by the parser's defect
  reports: a missing boundary parameter (``NoBoundaryInMultipartDefect``) or one whose
  case differs from the body's (``StartBoundaryNotFoundDefect``) is found in the body;
  parts swallowed into the epilogue by a nested part reusing its parent's boundary are
  read back; a forwarded email sent base64-encoded is decoded.

``read_structure`` returns the leaves to classify and the problems met (``MailProblem``).
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections import deque
from dataclasses import dataclass, field
from email.feedparser import NLCRE, BufferedSubFile, FeedParser  # type: ignore[attr-defined]
from email.message import Message
from typing import Any

from services.mail.headers import TOLERANT_POLICY
from services.mail.message import MailProblem

#: Containers nested deeper than this are not read (one UNREADABLE_PART stands for what is
#: below). Real mail nests under 15 levels, even a forward of a forward of a forward.
MAX_DEPTH = 50
#: Parts (containers included) after this many are not kept. Real mail has under 50.
MAX_PARTS = 500
#: Text is fed to the parser in chunks this big, so that parsing stops soon after
#: MAX_PARTS (a 1 MB email of empty parts is 90,000 parts).
_FEED_CHUNK = 8 * 1024


@dataclass
class _State:
    """What one email's parse has used up and cut off."""

    parts: int = 0
    dropped_parts: bool = False
    #: Containers below MAX_DEPTH turned into leaves: id -> (part, declared content type).
    cut: dict[int, tuple[Message, str]] = field(default_factory=dict)


class _Lines(BufferedSubFile):
    """``BufferedSubFile`` that tests only lines starting with "--" against boundaries.

    The stdlib tests every line against the boundary of every enclosing multipart:
    lines x depth regular expression matches, 8 s for 1 MB of blank lines 50 deep. A
    boundary delimiter always starts with "--"; the one other end-of-part test (blank
    lines, inside message/delivery-status) turns the shortcut off while it is active.
    """

    # BufferedSubFile's own (it, NLCRE and the FeedParser attributes below are internals,
    # absent from the type stubs).
    _lines: deque[str]

    def __init__(self) -> None:
        super().__init__()
        self._blank_line_tests = 0

    def push_eof_matcher(self, pred: Any) -> None:
        self._blank_line_tests += pred == NLCRE.match
        super().push_eof_matcher(pred)

    def pop_eof_matcher(self) -> Any:
        pred = super().pop_eof_matcher()
        self._blank_line_tests -= pred == NLCRE.match
        return pred

    def readline(self) -> Any:
        lines = self._lines
        if lines and not self._blank_line_tests and not lines[0].startswith("--"):
            return lines.popleft()  # cannot end a part: no boundary tests needed
        return super().readline()


class _BoundedParser(FeedParser):
    """``FeedParser`` that stops nesting at ``MAX_DEPTH`` and keeping parts at ``MAX_PARTS``.

    Hooks internal methods, unchanged from CPython 3.11 to 3.13; the hostile-mail tests
    (a 1000-deep nesting, 1000 parts, a deep part of blank lines) fail loudly if a new
    Python changes them.
    """

    _factory: Any
    _input: _Lines
    _msgstack: list[Message]
    _cur: Message | None
    _last: Message

    def __init__(self, state: _State, base_depth: int) -> None:
        super().__init__(policy=TOLERANT_POLICY)
        self._input = _Lines()
        self._state = state
        self._base_depth = base_depth

    def _new_message(self) -> None:
        # FeedParser._new_message, except that parts over the budget are parsed (the
        # parser needs them) but never attached, so they are freed as soon as read.
        msg: Message = self._factory(policy=TOLERANT_POLICY)
        if self._cur and self._cur.get_content_type() == "multipart/digest":
            msg.set_default_type("message/rfc822")
        self._state.parts += 1
        if self._msgstack:
            if self._state.parts <= MAX_PARTS:
                self._msgstack[-1].attach(msg)
            else:
                self._state.dropped_parts = True
        self._msgstack.append(msg)
        self._cur = msg
        self._last = msg

    def _parse_headers(self, lines: list[str]) -> None:
        super()._parse_headers(lines)  # type: ignore[misc]
        part = self._cur
        assert part is not None  # the message whose headers these are
        depth = self._base_depth + len(self._msgstack)
        if depth > MAX_DEPTH and part.get_content_maintype() in ("multipart", "message"):
            # A leaf from here down: the parser reads the rest of it as one payload.
            self._state.cut[id(part)] = (part, _make_leaf(part))


def _make_leaf(part: Message) -> str:
    """Retype a container as opaque bytes (nothing descends into it, ``get_body`` included);
    return its declared type."""
    declared = part.get_content_type()
    del part["content-type"]
    part["Content-Type"] = "application/octet-stream"
    return declared


def raw_payload(part: Message) -> str:
    """A leaf's payload exactly as parsed (8-bit bytes as surrogate escapes), "" if none.

    Not ``get_payload()``: that re-decodes 8-bit text with the part's declared charset,
    lossily, and raises on a hostile one (a NUL in it gives ValueError).
    """
    payload = getattr(part, "_payload", None)
    return payload if isinstance(payload, str) else ""


def _parse(text: str, state: _State, base_depth: int) -> Message:
    parser = _BoundedParser(state, base_depth)
    for start in range(0, len(text), _FEED_CHUNK):
        if state.dropped_parts:
            break  # everything from here on would be dropped: do not parse it
        parser.feed(text[start : start + _FEED_CHUNK])
    return parser.close()


# --- the walk --------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A part to classify. ``unreadable``: raw content of structure that was not read."""

    index: int
    part: Message
    unreadable: bool = False
    #: The declared type of an unreadable container (it is retyped as opaque bytes).
    declared_type: str | None = None


@dataclass(frozen=True)
class Structure:
    """A parsed email: its (repaired) tree, the leaves to classify, the problems met."""

    root: Message
    leaves: list[Leaf]
    problems: tuple[MailProblem, ...]


def read_structure(raw: bytes) -> Structure:
    """Parse ``raw``, repair what can be repaired, and list the leaves in walk order.

    Part indexes follow ``Message.walk()`` order over the repaired tree (containers
    count), so they are the same as before for well-formed mail and stable for the
    same bytes. The tree is repaired in place, so ``get_body`` works on it afterwards.
    """
    state = _State()
    text = raw.decode("ascii", "surrogateescape")
    root = _parse(text, state, 0)
    problems: set[MailProblem] = set()
    if not root.keys():
        headers_start = _find_headers(text)
        if headers_start:
            state = _State()
            root = _parse(text[headers_start:], state, 0)
            problems.add(MailProblem.SALVAGED_STRUCTURE)
    leaves: list[Leaf] = []
    # (part, depth, boundaries of the multiparts it is inside, lower-cased)
    stack: list[tuple[Message, int, frozenset[str]]] = [(root, 1, frozenset())]
    index = 0
    while stack:  # iterative: no recursion however deep the tree
        part, depth, outer = stack.pop()
        here, index = index, index + 1
        cut = state.cut.get(id(part))
        if cut is not None:
            problems.add(MailProblem.TOO_DEEPLY_NESTED)
            leaves.append(Leaf(here, part, unreadable=True, declared_type=cut[1]))
            continue
        children = _children(part, depth, state, problems, outer)
        if children is None:
            leaves.append(Leaf(here, part))
        elif isinstance(children, _Unreadable):
            problems.add(MailProblem.UNREADABLE_STRUCTURE)
            leaves.append(Leaf(here, part, unreadable=True, declared_type=_make_leaf(part)))
        else:
            boundary = part.get_boundary() if part.get_content_maintype() == "multipart" else None
            inner = outer | {boundary.lower()} if boundary else outer
            stack.extend((child, depth + 1, inner) for child in reversed(children))
    if state.dropped_parts:
        problems.add(MailProblem.TOO_MANY_PARTS)
    return Structure(root, leaves, tuple(p for p in MailProblem if p in problems))


# Junk before the headers (a blank line, a UTF-8 byte order mark, a stray line written by
# a broken tool) hides every header from the parser; headers are looked for this far in.
_MAX_JUNK_LINES = 5
_BOM = "\udcef\udcbb\udcbf"  # b"\xef\xbb\xbf" decoded with surrogateescape
_HEADER_START = re.compile(r"[!-9;-~]+:[ \t]")


def _find_headers(text: str) -> int:
    """Where the header block starts after leading junk lines; 0 when it does not."""
    start = len(_BOM) if text.startswith(_BOM) else 0
    for _ in range(_MAX_JUNK_LINES + 1):
        if _HEADER_START.match(text, start):
            return start
        newline = text.find("\n", start, start + 4096)
        if newline < 0:
            return 0
        start = newline + 1
    return 0


class _Unreadable:
    """A container whose parts could not be found: it is reported as one raw leaf."""


def _children(
    part: Message, depth: int, state: _State, problems: set[MailProblem], outer: frozenset[str]
) -> list[Message] | _Unreadable | None:
    """A container's parts (repaired if need be), ``_Unreadable``, or None for a leaf.

    ``outer``: the boundaries of the multiparts this part is inside, lower-cased.
    """
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        if part.is_multipart():
            children = list(part.get_payload())
            extra = _parts_in_epilogue(part, depth, state)
            if extra:
                problems.add(MailProblem.SALVAGED_STRUCTURE)
                children += extra
                _set_parts(part, children)
                part.epilogue = None
            return children
        text = raw_payload(part)
        if not text.strip():
            _set_parts(part, [])  # an empty container: nothing to lose
            return []
        declared = part.get_boundary()
        if declared and declared.lower() in outer:
            # It reused an enclosing boundary: its parts were read as its parent's (and
            # from the parent's epilogue); what is left here is only its preamble.
            _set_parts(part, [])
            return []
        repaired = _split_unparsed(part, text, depth, state)
        if repaired is None:
            return _Unreadable()
        problems.add(MailProblem.SALVAGED_STRUCTURE)
        _set_parts(part, repaired)
        return repaired
    if maintype == "message" and part.is_multipart():
        children = list(part.get_payload())
        decoded = _decode_encoded_message(part, children, depth, state)
        if decoded is not None:
            problems.add(MailProblem.SALVAGED_STRUCTURE)
            _set_parts(part, [decoded])
            return [decoded]
        return children
    return None


def _set_parts(part: Message, parts: list[Message]) -> None:
    """Make ``part`` the container of ``parts``: repairs are made in the tree itself."""
    payload: list[Message | str] = list(parts)
    part.set_payload(payload)


# --- repairs ---------------------------------------------------------------------------

# A line that may be a multipart delimiter: "--", a boundary, optionally "--" for the last
# one. The boundary is checked in code, not in the pattern: a pattern that both bounds
# its length and trims trailing blanks backtracks ~70x70 times per line.
_DASH_LINE = re.compile(r"^--([^\n]*)", re.MULTILINE)
_HEADER_LINE = re.compile(r"[!-9;-~]+:")
_RULER = re.compile(r"[-=_*~#.]*")


def _find_boundary(text: str, declared: str | None) -> str | None:
    """The boundary a body actually uses, as written in it, or None.

    A candidate is a ``--X`` line seen at least twice (counting ``--X--``) and at least
    once followed by part headers. The declared boundary wins in any letter case;
    otherwise the first candidate in the body (the outermost). Signature separators
    (``-- ``) and rulers (``-----``) are never candidates.
    """
    seen: dict[str, int] = {}
    with_headers: dict[str, None] = {}  # ordered, by first appearance
    for match in _DASH_LINE.finditer(text):
        token = match.group(1).rstrip(" \t\r")
        if token.endswith("--") and len(token) > 2:
            token = token[:-2]
        # RFC 2046: 1-70 characters; mail clients accept any printable ASCII.
        if not 0 < len(token) <= 70 or not (token.isascii() and token.isprintable()):
            continue
        if _RULER.fullmatch(token):
            continue
        seen[token] = seen.get(token, 0) + 1
        # The match ends before the line's "\n": part headers would start after it.
        if token not in with_headers and _HEADER_LINE.match(text, match.end() + 1):
            with_headers[token] = None
    candidates = [t for t in with_headers if seen[t] >= 2]
    if declared:
        for token in candidates:
            if token.lower() == declared.lower():
                return token
    return candidates[0] if candidates else None


def _split_on(text: str, boundary: str, depth: int, state: _State) -> list[Message]:
    """The parts of a multipart body, split leniently on ``--boundary`` lines.

    Text before the first delimiter (preamble) and after a closing one (epilogue) is
    skipped, except that an opening delimiter after a closing one starts a new part (a
    nested part that reused the boundary closed it early); a last part without a closing
    delimiter (a truncated email) is kept.
    """
    delimiter = re.compile(
        r"^--" + re.escape(boundary) + r"(--)?[ \t]*(?:\r?\n|\r?$)", re.MULTILINE
    )
    chunks: list[str] = []
    start: int | None = None
    for match in delimiter.finditer(text):
        if start is not None:
            # The line break before a delimiter belongs to the delimiter (RFC 2046).
            chunk = text[start : match.start()]
            chunks.append(chunk.removesuffix("\n").removesuffix("\r"))
        start = None if match.group(1) else match.end()
    if start is not None:
        chunks.append(text[start:])
    parts = []
    for chunk in chunks:
        if not chunk.strip():
            continue
        if state.parts >= MAX_PARTS:
            state.dropped_parts = True
            break
        parts.append(_parse(chunk, state, depth))
    return parts


def _split_unparsed(part: Message, text: str, depth: int, state: _State) -> list[Message] | None:
    """Parts of a multipart the parser could not split (no boundary, or the wrong one)."""
    declared = part.get_boundary()
    for body in (text, _transfer_decoded(part, text)):
        if body is None:
            continue
        boundary = _find_boundary(body, declared)
        if boundary is not None:
            parts = _split_on(body, boundary, depth, state)
            if parts:
                return parts
    return None


def _parts_in_epilogue(part: Message, depth: int, state: _State) -> list[Message]:
    """Parts after the closing delimiter: a nested part reused this part's boundary."""
    epilogue = part.epilogue
    boundary = part.get_boundary()
    if not epilogue or not boundary or f"--{boundary}" not in epilogue:
        return []
    return _split_on(epilogue, boundary, depth, state)


def _transfer_decoded(part: Message, text: str) -> str | None:
    """``text`` decoded per the part's (forbidden on containers) base64/QP encoding."""
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    data = text.encode("utf-8", "surrogateescape")
    if encoding == "base64":
        return lenient_b64decode(data).decode("ascii", "surrogateescape")
    if encoding == "quoted-printable":
        return quopri.decodestring(data).decode("ascii", "surrogateescape")
    return None


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def lenient_b64decode(data: bytes) -> bytes:
    """What can be decoded of base64 text: stray characters and a dangling tail dropped."""
    clean = _NOT_BASE64.sub(b"", data)
    clean = clean[: len(clean) - len(clean) % 4]
    try:
        return base64.b64decode(clean)
    except (binascii.Error, ValueError):
        return b""


def _decode_encoded_message(
    part: Message, children: list[Message], depth: int, state: _State
) -> Message | None:
    """A forwarded email (message/rfc822) sent base64 or QP-encoded, which RFC 2046
    forbids: the parser reads the encoded text as a headerless message. Decode it."""
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding not in ("base64", "quoted-printable") or len(children) != 1:
        return None
    inner = children[0]
    if inner.keys() or inner.is_multipart():
        return None  # it did parse as an email: leave it
    text = raw_payload(inner)
    decoded = _transfer_decoded(part, text)
    if not decoded or not decoded.strip():
        return None
    return _parse(decoded, state, depth)
