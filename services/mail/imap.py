"""An IMAP folder as a mail source (any IMAP4rev1 server: Dovecot, Exchange, Gmail's IMAP).

Standard library ``imaplib`` over TLS, always: implicit TLS (``security="ssl"``, port 993)
or STARTTLS on the plain port (``security="starttls"``, port 143); the certificate is
checked with ``ssl_context`` (the system's trusted CAs by default). Every command is
UID-based (``UID SEARCH``, ``UID FETCH``, ``UID STORE``), so message numbers shifting under
expunges never matter.

**Done** is the keyword ``$ClaimsQueued`` (``$`` + ``keyword_prefix`` + ``Queued``), set
only by ``mark_done`` — which the caller calls after the email's jobs are committed.
``fetch`` lists the folder's messages without that keyword (and not ``\\Deleted``), oldest
UID first. Nothing else about the message changes: bodies are read with ``BODY.PEEK[]``,
so the ``\\Seen`` flag a person reading the mailbox relies on is left alone. The server
must allow new keywords in the folder (``\\*`` in ``PERMANENTFLAGS``), as every common
server does; when it does not, ``fetch`` fails with ``MailSourceError("misconfigured")``
rather than re-reading the folder forever. (A mode that moves done mail to another folder
instead is not needed yet and not implemented.)

**Outcome** (``mark_outcome``) is one of the keywords ``$ClaimsProcessed``,
``$ClaimsNeedsReview``, ``$ClaimsFailed``: the one set, the other two cleared.

**Ids.** ``source_id`` is ``"{uidvalidity}:{uid}"``. The folder's UIDVALIDITY is kept in the
``CursorStore`` under ``imap:{folder}``. When the server reports a different one (the
mailbox was rebuilt or restored: every UID is new), a warning is logged with the old and
new values and the poll goes on: the messages are listed again under their new ids. Those
already done still carry ``$ClaimsQueued`` — keywords are stored with the message and
survive the renumbering — so they are not listed; if the keywords were lost too, the ledger
recognises each re-listed message by the sha256 of its raw bytes and does not record it
twice. An id from the old UIDVALIDITY cannot be found again by UID: ``mark_done`` raises
``KeyError`` for it (the caller logs it; the message is fetched again next poll and
recognised as already recorded) and ``mark_outcome`` logs and ignores it.

**Size.** Each message's ``RFC822.SIZE`` is asked first; one over ``max_email_bytes`` is not
downloaded: it is yielded with empty ``data`` and ``declared_size`` set, for intake to
record as too large (so is one whose body turns out larger than the server declared). A
message the server refuses to give (``NO``) is logged by UID and skipped: the rest of the
folder still comes, and it is asked for again next poll.

**Folder** is the name as people see it (``"Réclamations"``); it is sent in IMAP's modified
UTF-7. Quotes, backslashes and control characters are refused.

**Connections.** ``fetch`` opens one connection (login, select the folder) and logs out
when the iteration ends. ``mark_done``/``mark_outcome`` use that connection while a fetch
is running (the caller marks emails between yields) and open their own otherwise. A
connection that drops is opened again once per command before the poll gives up.

**Errors** that stop the whole poll are ``MailSourceError``: ``auth_revoked`` (the server
refused the username or password), ``unavailable`` (refused, timed out, TLS failed, the
connection dropped twice), ``misconfigured`` (no such folder, no STARTTLS, no keywords).
Logs and messages never carry addresses, subjects or bodies: only UIDs, sizes, counts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import imaplib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

from services.mail.source import CursorStore, EmailOutcome, MailSourceError, RawEmail

log = logging.getLogger(__name__)

T = TypeVar("T")

_CURSOR_KEY_MAX = 64
_KEYWORD_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,40}")
_SOURCE_ID = re.compile(r"(\d+):(\d+)")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "[^"]*"')
_FOLDER_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')
#: A connection that broke (imaplib raises abort, or the socket's own error).
_DROPPED = (imaplib.IMAP4.abort, OSError)


class _UidValidityChanged(Exception):
    """A reconnect found another UIDVALIDITY: the UIDs in hand mean nothing any more."""


class ImapSource:
    """``MailSource`` and ``OutcomeMarking`` over one IMAP folder (see the module doc)."""

    name = "imap"

    def __init__(
        self,
        host: str,
        port: int = 993,
        *,
        username: str,
        password: str,
        folder: str = "INBOX",
        security: Literal["ssl", "starttls"] = "ssl",
        ssl_context: ssl.SSLContext | None = None,
        cursors: CursorStore,
        max_email_bytes: int,
        timeout_s: float = 30.0,
        keyword_prefix: str = "Claims",
    ) -> None:
        if security not in ("ssl", "starttls"):
            raise ValueError(f"security must be 'ssl' or 'starttls', not {security!r}")
        if not _KEYWORD_PREFIX.fullmatch(keyword_prefix):
            raise ValueError("keyword_prefix must be letters, digits, '_', '.' or '-'")
        if not folder or _FOLDER_UNSAFE.search(folder):
            raise ValueError("folder must be a non-empty name without quotes or controls")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.folder = folder
        self.security = security
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.cursors = cursors
        self.max_email_bytes = max_email_bytes
        self.timeout_s = timeout_s
        self.done_keyword = f"${keyword_prefix}Queued"
        self.outcome_keywords = {
            EmailOutcome.PROCESSED: f"${keyword_prefix}Processed",
            EmailOutcome.NEEDS_REVIEW: f"${keyword_prefix}NeedsReview",
            EmailOutcome.FAILED: f"${keyword_prefix}Failed",
        }
        self.cursor_key = _cursor_key(self.name, folder)
        self._conn: imaplib.IMAP4 | None = None
        self._uidvalidity: int | None = None
        self._fetch_token: object | None = None

    def __repr__(self) -> str:  # never the password
        return f"ImapSource({self.host}:{self.port}, folder={self.folder!r})"

    # -- MailSource ---------------------------------------------------------------------

    def fetch(self) -> Iterator[RawEmail]:
        if self._conn is not None:  # an earlier fetch left unfinished: this one takes over
            self._close()
        token = self._fetch_token = object()
        self._open()
        try:
            uidvalidity = self._uidvalidity
            try:
                uids = self._run(self._search_pending, uidvalidity)
                log.debug("imap messages to fetch", extra={"count": len(uids)})
                for uid in uids:
                    raw = self._run(
                        partial(self._read, uidvalidity=uidvalidity, uid=uid), uidvalidity
                    )
                    if raw is not None:
                        yield raw
            except _UidValidityChanged:
                # the ids in hand are stale; the next poll lists the folder afresh
                log.warning("imap UIDVALIDITY changed during a fetch; stopping this poll")
        finally:
            if self._fetch_token is token:  # not when a later fetch took the connection over
                self._fetch_token = None
                self._close()

    def mark_done(self, source_id: str) -> None:
        uidvalidity, uid = _parse_source_id(source_id)

        def store(conn: imaplib.IMAP4) -> None:
            if self._uidvalidity != uidvalidity:
                raise KeyError(
                    f"imap message {source_id} is from UIDVALIDITY {uidvalidity}, the folder's "
                    f"is now {self._uidvalidity}: it will be fetched again"
                )
            if not self._store(conn, uid, "+FLAGS", self.done_keyword):
                raise KeyError(f"no such imap message: {source_id}")
            log.debug("imap message marked done", extra={"source_id": source_id})

        self._with_connection(store)

    # -- OutcomeMarking -----------------------------------------------------------------

    def mark_outcome(self, source_id: str, outcome: EmailOutcome) -> None:
        uidvalidity, uid = _parse_source_id(source_id)
        keyword = self.outcome_keywords[EmailOutcome(outcome)]
        others = " ".join(k for k in self.outcome_keywords.values() if k != keyword)

        def store(conn: imaplib.IMAP4) -> None:
            if self._uidvalidity != uidvalidity:
                log.info(
                    "imap outcome not shown: the message is from an earlier UIDVALIDITY",
                    extra={"source_id": source_id, "uidvalidity": self._uidvalidity},
                )
                return
            # the new one first: the message never shows no outcome while it changes
            if not self._store(conn, uid, "+FLAGS", keyword):
                log.info("imap outcome not shown: no such message", extra={"source_id": source_id})
                return
            self._store(conn, uid, "-FLAGS", others)
            log.debug(
                "imap outcome marked", extra={"source_id": source_id, "outcome": str(outcome)}
            )

        self._with_connection(store)

    def check_access(self) -> str:
        """Log in and open the folder, as a poll would (``claims-ocr doctor``)."""
        if self._conn is not None:
            return f"IMAP folder {self.folder!r} open"
        self._open()
        self._close()
        return f"logged in to {self.host}:{self.port}; folder {self.folder!r} takes keywords"

    # -- connection ---------------------------------------------------------------------

    def _with_connection(self, op: Callable[[imaplib.IMAP4], None]) -> None:
        """Run ``op`` on the fetch's connection when one is open, else on a new one.

        ``op`` checks the source id's UIDVALIDITY against ``_uidvalidity`` itself, after
        any reconnect.
        """
        if self._conn is not None:
            self._run(op, None)
            return
        self._open()
        try:
            self._run(op, None)
        finally:
            self._close()

    def _run(self, op: Callable[[imaplib.IMAP4], T], uidvalidity: int | None) -> T:
        """``op`` on the open connection; on a dropped connection, open it again once.

        With ``uidvalidity``, the folder must still have it (raises ``_UidValidityChanged``).
        """
        if self._conn is None:
            self._open()
        assert self._conn is not None
        if uidvalidity is not None and self._uidvalidity != uidvalidity:
            raise _UidValidityChanged
        try:
            return op(self._conn)
        except _DROPPED as exc:
            log.warning(
                "imap connection dropped; connecting again", extra={"error": type(exc).__name__}
            )
        self._close()
        self._open()
        if uidvalidity is not None and self._uidvalidity != uidvalidity:
            raise _UidValidityChanged
        assert self._conn is not None
        try:
            return op(self._conn)
        except _DROPPED as exc:
            self._close()
            raise MailSourceError(
                "unavailable",
                f"the connection to the IMAP server {self.host}:{self.port} dropped twice "
                f"({type(exc).__name__})",
            ) from exc

    def _open(self) -> None:
        """Connect, log in, select the folder, check it; sets ``_conn`` and ``_uidvalidity``."""
        conn = self._connect()
        try:
            self._login(conn)
            self._uidvalidity = self._select(conn)
        except BaseException:
            _logout(conn)
            raise
        self._conn = conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _logout(conn)

    def _connect(self) -> imaplib.IMAP4:
        where = f"{self.host}:{self.port}"
        try:
            if self.security == "ssl":
                return imaplib.IMAP4_SSL(
                    self.host, self.port, ssl_context=self.ssl_context, timeout=self.timeout_s
                )
            conn = imaplib.IMAP4(self.host, self.port, timeout=self.timeout_s)
        except ssl.SSLCertVerificationError as exc:
            raise MailSourceError(
                "unavailable",
                f"TLS to the IMAP server {where} failed: its certificate is not trusted "
                f"({type(exc).__name__}: {exc.verify_message}); give the CA that signed it, "
                "or check IMAP_HOST",
            ) from exc
        except ssl.SSLError as exc:
            raise MailSourceError(
                "unavailable",
                f"TLS to the IMAP server {where} failed ({type(exc).__name__}: {exc.reason}); "
                "is the port one that speaks TLS from the start (993), or should security be "
                "starttls?",
            ) from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            raise _unreachable(where, exc) from exc
        # STARTTLS: nothing but the upgrade is sent before TLS is up
        try:
            if "STARTTLS" not in conn.capabilities:
                raise MailSourceError(
                    "misconfigured",
                    f"the IMAP server {where} does not offer STARTTLS: use security=ssl on "
                    "its TLS port (993); this source never logs in without TLS",
                )
            conn.starttls(ssl_context=self.ssl_context)
        except MailSourceError:
            _logout(conn)
            raise
        except ssl.SSLCertVerificationError as exc:
            _logout(conn)
            raise MailSourceError(
                "unavailable",
                f"STARTTLS to the IMAP server {where} failed: its certificate is not trusted "
                f"({type(exc).__name__}: {exc.verify_message}); give the CA that signed it, "
                "or check IMAP_HOST",
            ) from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            _logout(conn)
            raise MailSourceError(
                "unavailable", f"STARTTLS to the IMAP server {where} failed ({type(exc).__name__})"
            ) from exc
        return conn

    def _login(self, conn: imaplib.IMAP4) -> None:
        try:
            conn.login(self.username, self._password)
        except imaplib.IMAP4.abort as exc:
            raise _unreachable(f"{self.host}:{self.port}", exc) from exc
        except imaplib.IMAP4.error as exc:
            if "UNAVAILABLE" in str(exc).upper():  # RFC 5530: the server's auth is down
                raise MailSourceError(
                    "unavailable",
                    f"the IMAP server {self.host}:{self.port} cannot check logins just now",
                ) from exc
            raise MailSourceError(
                "auth_revoked",
                "the IMAP server refused the username or password (IMAP_USER/IMAP_PASSWORD)",
            ) from exc
        except UnicodeEncodeError as exc:
            raise MailSourceError(
                "misconfigured", "IMAP_USER/IMAP_PASSWORD must be ASCII for IMAP LOGIN"
            ) from exc
        except OSError as exc:
            raise _unreachable(f"{self.host}:{self.port}", exc) from exc

    def _select(self, conn: imaplib.IMAP4) -> int:
        """Select the folder read-write; returns its UIDVALIDITY (cursor checked and kept)."""
        try:
            typ, _ = conn.select(_quote(self.folder))
        except _DROPPED as exc:
            raise _unreachable(f"{self.host}:{self.port}", exc) from exc
        except imaplib.IMAP4.error:
            typ = "BAD"
        if typ != "OK":
            raise MailSourceError(
                "misconfigured",
                f"the IMAP folder {self.folder!r} cannot be opened ({typ}): does it exist "
                "(IMAP_FOLDER)?",
            )
        _, validity = conn.response("UIDVALIDITY")
        _, permanent = conn.response("PERMANENTFLAGS")
        try:
            uidvalidity = int(validity[-1])
        except (TypeError, ValueError, IndexError) as exc:
            raise MailSourceError(
                "misconfigured", f"the IMAP server gave no UIDVALIDITY for {self.folder!r}"
            ) from exc
        self._check_keywords_allowed(permanent)
        self._check_cursor(uidvalidity)
        return uidvalidity

    def _check_keywords_allowed(self, permanent: list[Any]) -> None:
        if not permanent or permanent[-1] is None:
            return  # no PERMANENTFLAGS: every flag is permanent (RFC 3501 7.1)
        allowed = permanent[-1].decode("ascii", "replace").split()
        allowed = [flag.strip("()") for flag in allowed]
        needed = [self.done_keyword, *self.outcome_keywords.values()]
        if "\\*" in allowed or all(k in allowed for k in needed):
            return
        raise MailSourceError(
            "misconfigured",
            f"the IMAP folder {self.folder!r} does not allow new keywords (no \\* in its "
            f"PERMANENTFLAGS), so emails cannot be marked done with {self.done_keyword} and "
            "would be read again on every poll; allow keywords on the server (or choose a "
            "folder that does)",
        )

    def _check_cursor(self, uidvalidity: int) -> None:
        stored = self.cursors.get_cursor(self.cursor_key)
        if stored == str(uidvalidity):
            return
        if stored is not None:
            log.warning(
                "imap folder UIDVALIDITY changed: its messages are listed again under new "
                "ids (done ones keep their keyword; the ledger recognises repeats)",
                extra={"old_uidvalidity": stored, "new_uidvalidity": uidvalidity},
            )
        self.cursors.set_cursor(self.cursor_key, str(uidvalidity))

    # -- commands -----------------------------------------------------------------------

    def _search_pending(self, conn: imaplib.IMAP4) -> list[int]:
        typ, data = conn.uid("SEARCH", "UNDELETED", "UNKEYWORD", self.done_keyword)
        _check_ok(typ, "UID SEARCH")
        uids = {int(n) for line in data if line for n in line.split()}
        return sorted(uids)

    def _read(self, conn: imaplib.IMAP4, uidvalidity: int | None, uid: int) -> RawEmail | None:
        """The message ``uid`` (not downloaded when too large), or None when it is gone."""
        source_id = f"{uidvalidity}:{uid}"
        typ, data = conn.uid("FETCH", str(uid), "(RFC822.SIZE INTERNALDATE)")
        if typ != "OK":
            _unreadable(source_id, typ)
            return None
        meta = _response_for(data, uid)
        if meta is None:
            return None  # expunged meanwhile
        head = meta[0] if isinstance(meta, tuple) else meta
        size_match = _SIZE.search(head)
        size = int(size_match.group(1)) if size_match else None
        delivered = _internaldate(head)
        if size is not None and size > self.max_email_bytes:
            log.info(
                "imap message over the size limit: not downloaded",
                extra={"source_id": source_id, "size": size, "limit": self.max_email_bytes},
            )
            return RawEmail(source_id, b"", delivered, declared_size=size)

        typ, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
        if typ != "OK":
            _unreadable(source_id, typ)
            return None
        item = _response_for(data, uid, literal=True)
        if not isinstance(item, tuple):
            return None  # expunged meanwhile
        body = bytes(item[1])
        if len(body) > self.max_email_bytes:  # the server under-declared it
            return RawEmail(source_id, b"", delivered, declared_size=len(body))
        return RawEmail(source_id, body, delivered)

    def _store(self, conn: imaplib.IMAP4, uid: int, how: str, keywords: str) -> bool:
        """``UID STORE uid how (keywords)``; False when there is no message ``uid``."""
        typ, data = conn.uid("STORE", str(uid), how, f"({keywords})")
        _check_ok(typ, "UID STORE")
        if _response_for(data, uid) is not None:
            return True
        # servers answer a STORE that changed nothing without a FETCH: does it exist?
        typ, data = conn.uid("FETCH", str(uid), "(UID)")
        _check_ok(typ, "UID FETCH")
        return _response_for(data, uid) is not None


# -- helpers ----------------------------------------------------------------------------


def _cursor_key(name: str, folder: str) -> str:
    key = f"{name}:{folder}"
    if len(key) <= _CURSOR_KEY_MAX:
        return key
    digest = hashlib.sha256(folder.encode()).hexdigest()[:16]
    return f"{key[: _CURSOR_KEY_MAX - 17]}#{digest}"


def _parse_source_id(source_id: str) -> tuple[int, int]:
    match = _SOURCE_ID.fullmatch(source_id)
    if match is None:
        raise KeyError(f"invalid imap source id: {source_id!r}")
    return int(match.group(1)), int(match.group(2))


def _quote(folder: str) -> str:
    """The folder as IMAP names it: modified UTF-7 (RFC 3501 5.1.3), quoted.

    The constructor refused quotes, backslashes and controls, so quoting needs no escapes.
    """
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(utf16).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in folder:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return '"' + "".join(out) + '"'


def _check_ok(typ: str, command: str) -> None:
    if typ != "OK":
        raise MailSourceError("unavailable", f"the IMAP server refused {command} ({typ})")


def _unreadable(source_id: str, typ: str) -> None:
    # one message the server cannot give (NO): the rest of the folder still comes; this
    # one is asked for again next poll
    log.warning(
        "imap server refused one message; skipped", extra={"source_id": source_id, "reply": typ}
    )


def _response_for(data: list[Any], uid: int, *, literal: bool = False) -> Any:
    """The FETCH response item in ``data`` for ``uid`` (a tuple when it has a literal).

    imaplib splits a response with a literal into ``(text before, literal)`` and the text
    after it (``b" UID 7)"`` when the server names the UID last), so both are looked at.
    """
    for index, item in enumerate(data):
        head = item[0] if isinstance(item, tuple) else item
        if not isinstance(head, bytes):
            continue
        if isinstance(item, tuple) and index + 1 < len(data):
            after = data[index + 1]
            if isinstance(after, bytes):
                head += b" " + after
        match = _UID.search(head)
        if match is None or int(match.group(1)) != uid:
            continue
        if literal and not isinstance(item, tuple):
            continue
        return item
    return None


def _internaldate(head: bytes) -> datetime | None:
    match = _INTERNALDATE.search(head)
    if match is None:
        return None
    parsed = imaplib.Internaldate2tuple(match.group(0))
    if parsed is None:
        return None
    # Internaldate2tuple gives local time with its DST flag set: back to an instant
    return datetime.fromtimestamp(time.mktime(parsed), tz=UTC)


def _unreachable(where: str, exc: BaseException) -> MailSourceError:
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError | socket.timeout):
        what = "did not answer in time"
    elif isinstance(exc, ConnectionRefusedError):
        what = "refused the connection"
    elif isinstance(exc, socket.gaierror):
        what = "cannot be resolved"
    else:
        what = "cannot be reached"
    return MailSourceError("unavailable", f"the IMAP server {where} {what} ({kind})")


def _logout(conn: imaplib.IMAP4) -> None:
    with contextlib.suppress(imaplib.IMAP4.error, OSError):  # already gone
        conn.logout()
