"""Header parsing that hostile mail cannot break or stall: ``TOLERANT_POLICY``.

CPython's structured header parsers (``policy.default``) raise on some malformed values
(``From: a@``, ``Message-ID: <``, a NUL in an RFC 2231 charset) and are super-linear on
others (nested comments, runs of quotes: 138 ms for 1 KB of ``(``), and the ``email``
package re-parses a header on every read. So:

- a header that fails to parse is read as plain text instead, never raising;
- only the first ``MAX_HEADER_CHARS`` of a value are parsed (``MAX_ADDRESS_HEADER_CHARS``
  of an address header); From, Subject and Date are read once per email;
- the MIME headers read for every part (Content-Type, -Disposition, -Transfer-Encoding,
  -ID) skip the structured parser: they are kept as text, cut at
  ``MAX_MIME_HEADER_CHARS``, and the ``email`` package's own string-based accessors
  (``get_content_type``, ``get_param``, ``get_filename``) read them, as they always did.
"""

from __future__ import annotations

import re
from email.headerregistry import BaseHeader, HeaderRegistry
from email.policy import EmailPolicy, Policy
from typing import Any, ClassVar, Literal

#: Header values are parsed up to this many characters: no header we read is longer in
#: real mail (a 998-character subject in encoded words is about 4 KB).
MAX_HEADER_CHARS = 4 * 1024
#: ...and address headers up to this many: CPython's address parser takes 0.35 s on
#: 4 KB of quotes, 0.02 s on 1 KB; a real From header is under 300 characters.
MAX_ADDRESS_HEADER_CHARS = 1024
#: MIME header values are kept up to this many characters. They are read several times
#: per part (up to MAX_PARTS parts) by string code that is quadratic in the number of
#: ";" (``email.message._parseparam``); 2 KB holds a long RFC 2231 filename.
MAX_MIME_HEADER_CHARS = 2 * 1024

_ADDRESS_HEADERS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CONTENT_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})")
_LEADING_TOKEN = re.compile(rf"\s*({_TOKEN})")


class _TextHeader(BaseHeader):
    """A MIME header kept as text (control characters dropped): linear, never raises."""

    max_count: ClassVar[Literal[1] | None] = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        kwds["decoded"] = _CONTROL.sub("", value)[:MAX_MIME_HEADER_CHARS]
        kwds["parse_tree"] = None

    def fold(self, *, policy: Policy) -> str:
        """As sent, on one line (parsed mail is never re-serialised; this keeps it possible)."""
        return f"{self.name}: {self}{policy.linesep}"

    def _token(self) -> str | None:
        match = _LEADING_TOKEN.match(str(self))
        return match.group(1).lower() if match else None


class _ContentTypeHeader(_TextHeader):
    """``maintype``/``subtype`` as the stdlib reads them; "text/plain" when invalid."""

    @property
    def content_type(self) -> str:
        match = _CONTENT_TYPE.match(str(self))
        return f"{match.group(1)}/{match.group(2)}".lower() if match else "text/plain"

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.content_type.partition("/")[2]


class _ContentDispositionHeader(_TextHeader):
    @property
    def content_disposition(self) -> str | None:
        return self._token()


class _ContentTransferEncodingHeader(_TextHeader):
    @property
    def cte(self) -> str:
        return self._token() or "7bit"


class _ContentIdHeader(_TextHeader):
    pass


class _Registry(HeaderRegistry):
    """``HeaderRegistry`` that builds each header class once (the stdlib builds a new
    class on every header read: 30 µs, thousands of times for a many-part email)."""

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().__getitem__(name)
        return built


def _registry() -> HeaderRegistry:
    registry = _Registry()
    registry.map_to_type("content-type", _ContentTypeHeader)
    registry.map_to_type("content-disposition", _ContentDispositionHeader)
    registry.map_to_type("content-transfer-encoding", _ContentTransferEncodingHeader)
    registry.map_to_type("content-id", _ContentIdHeader)
    return registry


# Plain headers for the last resort: every name maps to an unstructured header.
_PLAIN_HEADERS = HeaderRegistry(use_default_map=False)


class _TolerantPolicy(EmailPolicy):
    """``policy.default`` whose header parsing never raises and stays fast."""

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if hasattr(value, "name"):  # already a header object
            return value
        limit = MAX_ADDRESS_HEADER_CHARS if name.lower() in _ADDRESS_HEADERS else MAX_HEADER_CHARS
        value = str(value)[:limit]
        try:
            return super().header_fetch_parse(name, value)
        except Exception:  # CPython's header parsers raise IndexError, ValueError, ...
            pass
        cleaned = _CONTROL.sub("", value)
        try:
            return super().header_fetch_parse(name, cleaned)  # a NUL is the usual culprit
        except Exception:
            return _plain_header(name, cleaned)


def _plain_header(name: str, value: str) -> BaseHeader:
    """The header as unstructured text, encoded words left undecoded."""
    try:
        return _PLAIN_HEADERS(name, value.replace("=?", "= ?"))
    except Exception:
        return _PLAIN_HEADERS(name, "")


#: The policy every part of a parsed email carries.
TOLERANT_POLICY = _TolerantPolicy(header_factory=_registry())
