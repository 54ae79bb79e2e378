"""A Gmail mailbox read through the Gmail API, with labels to show progress.

Done means labelled ``{prefix}/Queued``; the outcome shows as one of
``{prefix}/Processed``, ``{prefix}/Needs-Review`` or ``{prefix}/Failed`` (made on first
use). The mailbox itself is never changed otherwise: nothing is archived, read-marked
or deleted.

Sync. The first poll (no cursor) is a full sync: the mailbox's ``historyId`` is read
*before* the search, then every message matching the query (by default: in the inbox,
with an attachment, not yet Queued) is listed up front, so labelling while we go cannot
shift the search's pages, and handed over oldest first. Later polls read only the
history since the cursor (messages added, and labels added that bring a message into
scope). The cursor advances only when every email handed over was marked done, so an
email whose processing crashed is seen again. A cursor Gmail has forgotten (404) falls
back to a full sync; the query skips Queued messages and the ledger is idempotent on
(source, source_id), so nothing is recorded twice.

What the incremental path can judge. History carries label ids only, so it checks the
query's label terms (``in:``, ``label:`` and their negations) and Queued; other terms
(``has:attachment``, words, ``from:``) are judged by the full sync alone, and an email
without attachments that arrives between full syncs is handed over too (intake records
it as having nothing to read). A query with ``OR`` or ``{}`` groups is not interpreted:
only Queued is checked.

Size. Each batch of candidates is first read as ``format=minimal`` (one batched call)
for ``sizeEstimate``; an email over ``max_email_bytes`` is handed over with
``declared_size`` and no bytes, and never downloaded.

Errors. Each call uses ``execute(num_retries=...)``: the library's exponential backoff
with jitter on 429, 5xx and rate-limit 403s. What still fails becomes a
:class:`MailSourceError` (``auth_revoked``, ``misconfigured``, ``unavailable``), raised
from ``fetch`` at its start or part-way; emails already handed over and marked stay
marked, and the cursor stays. A message deleted between listing and reading is skipped.

One instance per thread: the underlying ``httplib2`` connection is not thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import google.auth.exceptions
import httplib2
from googleapiclient.errors import (
    BatchError,
    HttpError,
)

from services.google.auth import REVOKED_MESSAGE, GoogleAuthError, classify_refresh_error
from services.logs import get_logger
from services.mail.source import CursorStore, EmailOutcome, MailSourceError, RawEmail

log = get_logger(__name__)

DEFAULT_LABEL_PREFIX = "Claims"
#: Calls per batch request (Google advises at most 50 for Gmail).
BATCH_SIZE = 50
LIST_PAGE_SIZE = 500
_RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded"}
_TERM = re.compile(r'(-?)(?:(\w+):)?("[^"]*"|\S+)')


def label_key(name: str) -> str:
    """A label name as Gmail search matches it: any case, ``/`` and spaces as ``-``."""
    return re.sub(r"[/\s]+", "-", name.strip().strip('"')).lower()


def default_query(label_prefix: str = DEFAULT_LABEL_PREFIX) -> str:
    """In the inbox, with an attachment, not yet Queued."""
    return f"has:attachment in:inbox -label:{label_key(label_prefix + '/Queued')}"


DEFAULT_QUERY = default_query()


@dataclass(frozen=True)
class _Intent:
    """The label terms of a query (as label keys), which history can be checked against."""

    required: frozenset[str]
    excluded: frozenset[str]

    @classmethod
    def parse(cls, query: str) -> _Intent:
        if re.search(r"\bOR\b|[{}()]", query):
            return cls(frozenset(), frozenset())
        required: set[str] = set()
        excluded: set[str] = set()
        for negated, op, value in _TERM.findall(query):
            if op.lower() in ("in", "label") and label_key(value) != "anywhere":
                (excluded if negated else required).add(label_key(value))
        return cls(frozenset(required), frozenset(excluded))

    def admits(self, keys: set[str]) -> bool:
        return self.required <= keys and not (self.excluded & keys)


class _NotFound(MailSourceError):
    """Gmail answered 404 (a message deleted meanwhile, a history id it forgot)."""


class _Conflict(MailSourceError):
    """Gmail answered 409 (a label created by someone else meanwhile)."""


def _reason(exc: HttpError) -> str:
    """Google's ``errors[0].reason`` of an API error, if the body has one."""
    try:
        errors = json.loads(exc.content)["error"]["errors"]
        return str(errors[0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _http_failure(exc: HttpError) -> MailSourceError:
    status, reason = int(exc.status_code), _reason(exc)
    if status == 401:
        return GoogleAuthError("auth_revoked", f"Gmail refused the credentials: {REVOKED_MESSAGE}")
    if status == 403 and reason not in _RATE_LIMIT_REASONS:
        if reason == "insufficientPermissions":
            hint = "the token lacks the gmail.modify scope: run `claims-ocr google-auth` again"
        elif reason == "accessNotConfigured":
            hint = "enable the Gmail API in the Google Cloud project"
        else:
            hint = "check the account, its delegation and scopes"
        return MailSourceError("misconfigured", f"Gmail refused access ({reason}): {hint}")
    if status == 400:
        return MailSourceError(
            "misconfigured", f"Gmail rejected the request ({reason}): check the Gmail query"
        )
    if status == 404:
        return _NotFound("unavailable", "Gmail answered 404")
    if status == 409:
        return _Conflict("misconfigured", f"Gmail answered 409 ({reason})")
    return MailSourceError("unavailable", f"Gmail answered {status} ({reason}) after retries")


class GmailSource:
    """``MailSource`` and ``OutcomeMarking`` over one Gmail mailbox (``user_id``)."""

    name = "gmail"

    def __init__(
        self,
        service: Any,
        *,
        cursors: CursorStore,
        max_email_bytes: int,
        query: str | None = None,
        label_prefix: str = DEFAULT_LABEL_PREFIX,
        user_id: str = "me",
        num_retries: int = 5,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._service = service
        self._cursors = cursors
        self._max_email_bytes = max_email_bytes
        self._user = user_id
        self._num_retries = num_retries
        self._batch_size = batch_size
        self.queued_label = f"{label_prefix}/Queued"
        self.outcome_labels = {
            EmailOutcome.PROCESSED: f"{label_prefix}/Processed",
            EmailOutcome.NEEDS_REVIEW: f"{label_prefix}/Needs-Review",
            EmailOutcome.FAILED: f"{label_prefix}/Failed",
        }
        query = query or default_query(label_prefix)
        if label_key(self.queued_label) not in _Intent.parse(query).excluded:
            # Without it a full sync would hand over every email it already handed over.
            query = f"{query} -label:{label_key(self.queued_label)}"
        self.query = query
        self._intent = _Intent.parse(query)
        self._label_ids: dict[str, str] = {}  # label key -> id
        self._label_keys: dict[str, str] = {}  # id -> label key
        self._awaiting: set[str] = set()  # handed over by this fetch, not yet marked done

    # -- MailSource ---------------------------------------------------------------------

    def fetch(self) -> Iterator[RawEmail]:
        cursor = self._cursors.get_cursor(self.name)
        if cursor is not None and not cursor.isdigit():
            log.warning("gmail cursor is not a history id, doing a full sync")
            cursor = None
        incremental = cursor is not None
        ids: list[str] = []
        next_cursor = ""
        if cursor is not None:
            try:
                ids, next_cursor = self._history_since(cursor)
            except _NotFound:
                log.warning("gmail history id expired, doing a full sync")
                incremental = False
        if not incremental:
            ids, next_cursor = self._full_listing()
        self._awaiting = set()
        gone = skipped = 0
        for chunk in _chunks(ids, self._batch_size):
            metadata = self._metadata(chunk)
            for message_id in chunk:
                meta = metadata.get(message_id)
                if meta is None:
                    gone += 1
                    log.info("gmail message gone before it was read", message_id=message_id)
                    continue
                if not self._wanted(meta, incremental):
                    skipped += 1
                    continue
                email = self._read(message_id, meta)
                if email is None:
                    gone += 1
                    log.info("gmail message gone before it was read", message_id=message_id)
                    continue
                self._awaiting.add(message_id)
                yield email
        log.info(
            "gmail poll done",
            mode="history" if incremental else "full",
            candidates=len(ids),
            gone=gone,
            skipped=skipped,
            not_done=len(self._awaiting),
        )
        if not self._awaiting:
            self._cursors.set_cursor(self.name, next_cursor)

    def mark_done(self, source_id: str) -> None:
        self._modify(source_id, add=[self._label_id(self.queued_label)], remove=[])
        self._awaiting.discard(source_id)

    # -- OutcomeMarking -----------------------------------------------------------------

    def mark_outcome(self, source_id: str, outcome: EmailOutcome) -> None:
        wanted = self.outcome_labels[outcome]
        others = [name for name in self.outcome_labels.values() if name != wanted]
        self._modify(
            source_id,
            add=[self._label_id(wanted)],
            remove=[self._label_id(name) for name in others],
        )

    # -- listing ------------------------------------------------------------------------

    def _full_listing(self) -> tuple[list[str], str]:
        """Every matching id, oldest first, and the history id from before the search."""
        profile = self._execute(self._users().getProfile(userId=self._user))
        history_id = str(profile["historyId"])
        messages = self._users().messages()
        request = messages.list(userId=self._user, q=self.query, maxResults=LIST_PAGE_SIZE)
        ids: list[str] = []
        while request is not None:
            reply = self._execute(request)
            ids.extend(m["id"] for m in reply.get("messages", []))
            request = messages.list_next(request, reply)
        ids.reverse()  # Gmail lists newest first
        return list(dict.fromkeys(ids)), history_id

    def _history_since(self, cursor: str) -> tuple[list[str], str]:
        """Ids added (or brought into scope) since ``cursor``, in order, and the new cursor."""
        history = self._users().history()
        request = history.list(
            userId=self._user,
            startHistoryId=cursor,
            historyTypes=["messageAdded", "labelAdded"],
            maxResults=LIST_PAGE_SIZE,
        )
        in_scope = {self._label_id_of_key(key) for key in self._intent.required} - {None}
        ids: list[str] = []
        new_cursor = ""
        while request is not None:
            reply = self._execute(request)
            # The first page's id: anything newer is seen again next time, never missed.
            new_cursor = new_cursor or str(reply["historyId"])
            for record in reply.get("history", []):
                ids.extend(added["message"]["id"] for added in record.get("messagesAdded", []))
                ids.extend(
                    change["message"]["id"]
                    for change in record.get("labelsAdded", [])
                    if in_scope & set(change.get("labelIds", []))
                )
            request = history.list_next(request, reply)
        return list(dict.fromkeys(ids)), new_cursor

    def _wanted(self, meta: dict[str, Any], incremental: bool) -> bool:
        keys = self._keys_of(meta.get("labelIds", []))
        if label_key(self.queued_label) in keys:
            return False  # done already (by us, or by another poller meanwhile)
        return not incremental or self._intent.admits(keys)

    # -- reading ------------------------------------------------------------------------

    def _metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """``format=minimal`` of each id (``None``: deleted), in one batch where it works.

        Parts that fail otherwise (or the whole batch) are fetched one by one, which is
        where the library's retries apply.
        """
        found: dict[str, dict[str, Any] | None] = {}
        retry: list[str] = []

        def on_reply(request_id: str, response: Any, exception: Exception | None) -> None:
            if exception is None:
                found[request_id] = response
            elif isinstance(exception, HttpError) and exception.status_code == 404:
                found[request_id] = None
            else:
                retry.append(request_id)

        batch = self._service.new_batch_http_request(callback=on_reply)
        for message_id in ids:
            batch.add(self._get(message_id, "minimal"), request_id=message_id)
        try:
            batch.execute()
        except google.auth.exceptions.RefreshError as exc:
            raise classify_refresh_error(exc) from exc
        except (HttpError, BatchError, OSError, httplib2.HttpLib2Error) as exc:
            log.info("gmail batch failed, reading one by one", error=type(exc).__name__)
            retry = [i for i in ids if i not in found]
        for message_id in retry:
            try:
                found[message_id] = self._execute(self._get(message_id, "minimal"))
            except _NotFound:
                found[message_id] = None
        return found

    def _read(self, message_id: str, meta: dict[str, Any]) -> RawEmail | None:
        delivered = _delivered_at(meta)
        size = int(meta.get("sizeEstimate", 0))
        if size > self._max_email_bytes:
            log.info("gmail message over the size limit, not downloaded", message_id=message_id)
            return RawEmail(message_id, b"", delivered, declared_size=size)
        try:
            full = self._execute(self._get(message_id, "raw"))
        except _NotFound:
            return None
        raw = full.get("raw")
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (TypeError, binascii.Error, ValueError) as exc:
            raise MailSourceError(
                "unavailable", "Gmail returned a message without raw bytes"
            ) from exc
        return RawEmail(message_id, data, delivered)

    def _get(self, message_id: str, fmt: str) -> Any:
        return self._users().messages().get(userId=self._user, id=message_id, format=fmt)

    # -- labels -------------------------------------------------------------------------

    def _modify(self, message_id: str, *, add: list[str], remove: list[str]) -> None:
        body = {"addLabelIds": add, "removeLabelIds": remove}
        request = self._users().messages().modify(userId=self._user, id=message_id, body=body)
        try:
            self._execute(request)
        except _NotFound:
            log.info("gmail message deleted before it was labelled", message_id=message_id)

    def _label_id(self, name: str) -> str:
        """The id of the label ``name``, made if the mailbox lacks it."""
        key = label_key(name)
        if key not in self._label_ids:
            self._load_labels()
        if key in self._label_ids:
            return self._label_ids[key]
        body = {"name": name, "labelListVisibility": "labelShow", "messageListVisibility": "show"}
        try:
            label = self._execute(self._users().labels().create(userId=self._user, body=body))
        except _Conflict:
            self._load_labels()  # another poller made it meanwhile
            if key not in self._label_ids:
                raise
            return self._label_ids[key]
        log.info("gmail label created", label_id=label["id"])
        self._remember_label(label)
        return str(label["id"])

    def _label_id_of_key(self, key: str) -> str | None:
        if key not in self._label_ids:
            self._load_labels()
        return self._label_ids.get(key)

    def _keys_of(self, label_ids: Sequence[str]) -> set[str]:
        if any(i not in self._label_keys for i in label_ids):
            self._load_labels()
        return {self._label_keys[i] for i in label_ids if i in self._label_keys}

    def _load_labels(self) -> None:
        reply = self._execute(self._users().labels().list(userId=self._user))
        for label in reply.get("labels", []):
            self._remember_label(label)

    def _remember_label(self, label: dict[str, Any]) -> None:
        key = label_key(str(label["name"]))
        self._label_ids[key] = str(label["id"])
        self._label_keys[str(label["id"])] = key

    # -- calls --------------------------------------------------------------------------

    def _users(self) -> Any:
        return self._service.users()

    def _execute(self, request: Any) -> Any:
        """Run one call with the library's retries; failures become MailSourceError."""
        try:
            return request.execute(num_retries=self._num_retries)
        except google.auth.exceptions.RefreshError as exc:
            raise classify_refresh_error(exc) from exc
        except HttpError as exc:
            raise _http_failure(exc) from exc
        except (OSError, httplib2.HttpLib2Error, google.auth.exceptions.TransportError) as exc:
            raise MailSourceError(
                "unavailable", f"Gmail cannot be reached ({type(exc).__name__})"
            ) from exc


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """``itertools.batched`` (Python 3.12) for 3.11."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _delivered_at(meta: dict[str, Any]) -> datetime | None:
    """``internalDate``: when Gmail received the message (ms since the epoch)."""
    try:
        return datetime.fromtimestamp(int(meta["internalDate"]) / 1000, tz=UTC)
    except (KeyError, TypeError, ValueError):
        return None
