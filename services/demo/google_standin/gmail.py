"""Gmail API v1, the subset claims-ocr calls, on the paths ``googleapiclient`` sends.

Messages, labels, the history log and the profile live in :class:`GmailStore`
(``state.stores["gmail"]``); tests drive it directly (add, delete, expire history, lose a
message between list and get) and read its request log. The search language covers
what the product's queries use: ``has:attachment``, ``in:``/``is:``, ``label:`` (by name,
``/`` or ``-`` separated, any case), ``-`` negation and plain words, all ANDed. ``OR``
and ``{}`` groups are not understood.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesParser
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.demo.google_standin import batch
from services.demo.google_standin.oauth import check_bearer
from services.demo.google_standin.state import ApiFault, GoogleStandinState, google_error

SYSTEM_LABELS = (
    "INBOX",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "SENT",
    "DRAFT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
#: ``historyTypes`` values and the record keys they select.
HISTORY_KINDS = {
    "messageAdded": "messagesAdded",
    "messageDeleted": "messagesDeleted",
    "labelAdded": "labelsAdded",
    "labelRemoved": "labelsRemoved",
}
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
_TERM = re.compile(r'(-?)(?:(\w+):)?("[^"]*"|\S+)')


def label_key(name: str) -> str:
    """How Gmail search matches a label name: any case, ``/`` and spaces as ``-``."""
    return re.sub(r"[/\s]+", "-", name.strip().strip('"')).lower()


class LabelError(ValueError):
    """A request named a label id that does not exist."""


@dataclass
class _Message:
    id: str
    thread_id: str
    raw: bytes
    label_ids: set[str]
    internal_date_ms: int
    history_id: int

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "threadId": self.thread_id, "labelIds": sorted(self.label_ids)}


class GmailStore:
    """One mailbox; every method is thread-safe (the server runs in another thread)."""

    def __init__(self, email_address: str = "claims@example.com") -> None:
        self.email_address = email_address
        self._lock = threading.RLock()
        self._labels: dict[str, dict[str, Any]] = {
            label: {"id": label, "name": label, "type": "system"} for label in SYSTEM_LABELS
        }
        self._label_seq = itertools.count(1)
        self._message_seq = itertools.count(0x18F3A0C000000000)
        self._messages: dict[str, _Message] = {}
        self._history: list[dict[str, Any]] = []
        self._history_id = 1000
        self._oldest_history_id = 1000
        self._delete_on_get: dict[str, str | None] = {}
        self._get_faults: dict[str, deque[ApiFault]] = {}
        self._after_list: list[str] = []
        self._requests: list[dict[str, Any]] = []

    # -- for tests -----------------------------------------------------------------------

    def add_message(
        self,
        raw: bytes,
        labels: Iterable[str] = ("INBOX",),
        *,
        internal_date: datetime | None = None,
    ) -> str:
        """Deliver ``raw``; ``labels`` are system ids or user label names (made if new)."""
        with self._lock:
            label_ids = {self._label_id_for(name, create=True) for name in labels}
            when = internal_date.timestamp() if internal_date else time.time()
            return self._add(raw, label_ids, int(when * 1000))

    def delete(self, message_id: str) -> None:
        """Delete for good (not to Trash), as ``messages.delete`` would."""
        with self._lock:
            message = self._messages.pop(message_id)
            self._record("messagesDeleted", {"message": message.ref()}, message)

    def delete_on_get(self, message_id: str, *, fmt: str | None = None) -> None:
        """The message vanishes just before its next ``messages.get`` (of ``format=fmt``,
        or of any format): deleted between being listed and being read."""
        with self._lock:
            self._delete_on_get[message_id] = fmt

    def fail_get(self, message_id: str, status: int, *, reason: str = "", count: int = 1) -> None:
        """The next ``count`` ``messages.get`` of this message answer ``status``."""
        with self._lock:
            queue = self._get_faults.setdefault(message_id, deque())
            queue.extend(ApiFault(status, reason) for _ in range(count))

    def create_label_after_next_list(self, name: str) -> None:
        """Someone else creates ``name`` just after the next ``labels.list`` answers."""
        with self._lock:
            self._after_list.append(name)

    def labels_of(self, message_id: str) -> set[str]:
        """The names of the message's labels."""
        with self._lock:
            return {self._labels[i]["name"] for i in self._messages[message_id].label_ids}

    def label_names(self) -> list[str]:
        with self._lock:
            return [label["name"] for label in self._labels.values()]

    def message_ids(self) -> list[str]:
        with self._lock:
            return list(self._messages)

    def expire_history(self) -> None:
        """Forget the history log: a ``startHistoryId`` older than now answers 404."""
        with self._lock:
            self._history.clear()
            self._oldest_history_id = self._history_id

    @property
    def history_id(self) -> int:
        with self._lock:
            return self._history_id

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request seen: ``method``, ``path``, ``query`` (last value of each)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- for the routes ------------------------------------------------------------------

    def log(self, request: Request) -> None:
        with self._lock:
            self._requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": dict(request.query_params),
                }
            )

    def insert(self, raw: bytes, label_ids: Iterable[str], internal_date_ms: int | None) -> str:
        with self._lock:
            ids = set(label_ids)
            self._check_labels(ids)
            when = internal_date_ms if internal_date_ms is not None else int(time.time() * 1000)
            return self._add(raw, ids, when)

    def get(self, message_id: str, fmt: str = "full") -> _Message | None:
        with self._lock:
            if message_id in self._delete_on_get and self._delete_on_get[message_id] in (
                None,
                fmt,
            ):
                del self._delete_on_get[message_id]
                if message_id in self._messages:
                    self.delete(message_id)
            return self._messages.get(message_id)

    def take_get_fault(self, message_id: str) -> ApiFault | None:
        with self._lock:
            queue = self._get_faults.get(message_id)
            return queue.popleft() if queue else None

    def search(self, query: str, label_ids: Sequence[str], include_spam_trash: bool) -> list[str]:
        """Ids of the matching messages, newest first (as Gmail lists them)."""
        with self._lock:
            terms = [(neg == "-", (op or "").lower(), val) for neg, op, val in _TERM.findall(query)]
            scoped = include_spam_trash or any(
                op in ("in", "label") and label_key(val) in ("spam", "trash", "anywhere")
                for _, op, val in terms
            )
            found = []
            for message in self._messages.values():
                if not scoped and message.label_ids & {"SPAM", "TRASH"}:
                    continue
                if not set(label_ids) <= message.label_ids:
                    continue
                if all(self._matches(message, op, val) != neg for neg, op, val in terms):
                    found.append(message)
            found.sort(key=lambda m: (m.internal_date_ms, m.id), reverse=True)
            return [m.id for m in found]

    def modify(self, message_id: str, add: Sequence[str], remove: Sequence[str]) -> _Message | None:
        with self._lock:
            self._check_labels([*add, *remove])
            message = self._messages.get(message_id)
            if message is None:
                return None
            added = [i for i in dict.fromkeys(add) if i not in message.label_ids]
            removed = [i for i in dict.fromkeys(remove) if i in message.label_ids and i not in add]
            message.label_ids |= set(added)
            message.label_ids -= set(removed)
            if added:
                self._record("labelsAdded", {"message": message.ref(), "labelIds": added}, message)
            if removed:
                change = {"message": message.ref(), "labelIds": removed}
                self._record("labelsRemoved", change, message)
            return message

    def labels(self) -> list[dict[str, Any]]:
        """The labels, for ``labels.list`` (which runs the after-list hook)."""
        with self._lock:
            labels = [dict(label) for label in self._labels.values()]
            for name in self._after_list:
                self.create_label(name)
            self._after_list.clear()
            return labels

    def create_label(self, name: str) -> dict[str, Any] | None:
        """The new label, or ``None`` when the name is taken (any case)."""
        with self._lock:
            if any(label["name"].lower() == name.lower() for label in self._labels.values()):
                return None
            label_id = f"Label_{next(self._label_seq)}"
            label = {"id": label_id, "name": name, "type": "user"}
            self._labels[label_id] = label
            return dict(label)

    def history(
        self, start: int, kinds: Sequence[str], label_id: str | None
    ) -> list[dict[str, Any]] | None:
        """Records after ``start`` of the wanted kinds; ``None`` when ``start`` is too old."""
        with self._lock:
            if start < self._oldest_history_id:
                return None
            keys = [HISTORY_KINDS[k] for k in kinds if k in HISTORY_KINDS] or list(
                HISTORY_KINDS.values()
            )
            records = []
            for record in self._history:
                if int(record["id"]) <= start:
                    continue
                wanted = {k: record[k] for k in keys if k in record}
                if not wanted:
                    continue
                if label_id is not None and not any(
                    label_id in change["message"]["labelIds"]
                    for changes in wanted.values()
                    for change in changes
                ):
                    continue
                records.append({"id": record["id"], "messages": record["messages"], **wanted})
            return records

    def message_count(self) -> int:
        with self._lock:
            return len(self._messages)

    # -- inside --------------------------------------------------------------------------

    def _add(self, raw: bytes, label_ids: set[str], internal_date_ms: int) -> str:
        message_id = format(next(self._message_seq), "x")
        message = _Message(message_id, message_id, raw, label_ids, internal_date_ms, 0)
        self._messages[message_id] = message
        self._record("messagesAdded", {"message": message.ref()}, message)
        return message_id

    def _record(self, kind: str, change: dict[str, Any], message: _Message) -> None:
        self._history_id += 1
        message.history_id = self._history_id
        self._history.append(
            {
                "id": str(self._history_id),
                "messages": [{"id": message.id, "threadId": message.thread_id}],
                kind: [change],
            }
        )

    def _label_id_for(self, name: str, *, create: bool) -> str:
        if name in self._labels:
            return name
        for label in self._labels.values():
            if label["name"].lower() == name.lower():
                return str(label["id"])
        if not create:
            raise LabelError(name)
        created = self.create_label(name)
        assert created is not None
        return str(created["id"])

    def _check_labels(self, label_ids: Iterable[str]) -> None:
        for label_id in label_ids:
            if label_id not in self._labels:
                raise LabelError(label_id)

    def _matches(self, message: _Message, op: str, value: str) -> bool:
        value = value.strip('"')
        if op == "has" and value.lower() == "attachment":
            return _has_attachment(message.raw)
        if op in ("in", "is", "label"):
            key = label_key(value)
            if key == "anywhere":
                return True
            return any(label_key(self._labels[i]["name"]) == key for i in message.label_ids)
        text = f"{op}:{value}" if op else value
        return text.lower() in message.raw.decode("latin-1").lower()


def _has_attachment(raw: bytes) -> bool:
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    return any(
        part.get_filename() or part.get("Content-Disposition", "").startswith("attachment")
        for part in parsed.walk()
        if not part.is_multipart()
    )


def _headers(raw: bytes, wanted: Sequence[str]) -> list[dict[str, str]]:
    parsed = BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
    names = {w.lower() for w in wanted}
    return [
        {"name": name, "value": str(value)}
        for name, value in parsed.items()
        if not names or name.lower() in names
    ]


def _resource(message: _Message, fmt: str, metadata_headers: Sequence[str]) -> dict[str, Any]:
    """A Message resource in ``fmt`` (``full`` is answered like ``metadata``: no parts)."""
    body: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
    if message.label_ids:
        body["labelIds"] = sorted(message.label_ids)
    body.update(
        sizeEstimate=len(message.raw),
        historyId=str(message.history_id),
        internalDate=str(message.internal_date_ms),
    )
    if fmt == "raw":
        body["raw"] = base64.urlsafe_b64encode(message.raw).decode("ascii")
    elif fmt in ("metadata", "full"):
        parsed = BytesParser(policy=email.policy.compat32).parsebytes(message.raw, True)
        body["payload"] = {
            "mimeType": parsed.get_content_type(),
            "headers": _headers(message.raw, metadata_headers),
        }
    return body


def _decode_raw(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _page(items: list[Any], request: Request) -> tuple[list[Any], str | None]:
    params = request.query_params
    try:
        size = min(int(params.get("maxResults", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        start = int(params.get("pageToken") or 0)
    except ValueError:
        return [], None
    end = start + max(size, 1)
    return items[start:end], (str(end) if end < len(items) else None)


def _invalid(message: str) -> JSONResponse:
    return google_error(400, "invalidArgument", message=message)


def _not_found() -> JSONResponse:
    return google_error(404, "notFound", message="Requested entity was not found.")


def _conflict(message: str) -> JSONResponse:
    body = {
        "error": {
            "code": 409,
            "message": message,
            "status": "ALREADY_EXISTS",
            "errors": [{"message": message, "domain": "global", "reason": "duplicate"}],
        }
    }
    return JSONResponse(body, status_code=409)


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _upload_parts(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(metadata, message bytes) of a ``multipart/related`` upload, split as bytes (an
    ``email`` parser would parse the ``message/rfc822`` part instead of keeping it)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        return None
    parts = []
    for chunk in body.split(b"--" + found.group(1).encode())[1:]:
        if chunk.startswith(b"--"):
            break
        pieces = re.split(rb"\r?\n\r?\n", chunk.lstrip(b"\r\n"), maxsplit=1)
        if len(pieces) != 2:
            return None
        content = pieces[1]
        parts.append(content[:-2] if content.endswith(b"\r\n") else content.removesuffix(b"\n"))
    if len(parts) != 2:
        return None
    try:
        metadata = json.loads(parts[0] or b"{}")
    except ValueError:
        return None
    return (metadata, parts[1]) if isinstance(metadata, dict) else None


def store_of(state: GoogleStandinState) -> GmailStore:
    """The Gmail store of ``state`` (made on first use)."""
    store = state.stores.setdefault("gmail", GmailStore())
    if not isinstance(store, GmailStore):
        raise TypeError("state.stores['gmail'] is not a GmailStore")
    return store


def router(state: GoogleStandinState) -> APIRouter:
    store = store_of(state)
    api = APIRouter()
    base = "/gmail/v1/users/{user_id}"

    def guard(request: Request, user_id: str) -> Response | None:
        store.log(request)
        if (fault := state.fault_response("gmail")) is not None:
            return fault
        if (denied := check_bearer(state, request)) is not None:
            return denied
        if user_id not in ("me", store.email_address):
            return google_error(403, "forbidden", message="Delegation denied")
        return None

    @api.get(base + "/profile")
    async def profile(request: Request, user_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        return JSONResponse(
            {
                "emailAddress": store.email_address,
                "messagesTotal": store.message_count(),
                "threadsTotal": store.message_count(),
                "historyId": str(store.history_id),
            }
        )

    @api.get(base + "/messages")
    async def list_messages(request: Request, user_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        params = request.query_params
        ids = store.search(
            params.get("q", ""),
            params.getlist("labelIds"),
            params.get("includeSpamTrash", "false").lower() == "true",
        )
        page, next_token = _page(ids, request)
        body: dict[str, Any] = {"resultSizeEstimate": len(page)}
        if page:
            body["messages"] = [{"id": i, "threadId": i} for i in page]
        if next_token:
            body["nextPageToken"] = next_token
        return JSONResponse(body)

    @api.get(base + "/messages/{message_id}")
    async def get_message(request: Request, user_id: str, message_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        fmt = request.query_params.get("format", "full")
        if fmt not in ("full", "metadata", "minimal", "raw"):
            return _invalid(f"Invalid format: {fmt}")
        if (fault := store.take_get_fault(message_id)) is not None:
            return google_error(fault.status, fault.reason, fault.retry_after_s)
        message = store.get(message_id, fmt)
        if message is None:
            return _not_found()
        headers = request.query_params.getlist("metadataHeaders")
        return JSONResponse(_resource(message, fmt, headers))

    @api.post(base + "/messages/batchModify")
    async def batch_modify(request: Request, user_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        body = await _json_body(request)
        if body is None or not isinstance(body.get("ids"), list):
            return _invalid("ids is required")
        add, remove = body.get("addLabelIds") or [], body.get("removeLabelIds") or []
        try:
            for message_id in body["ids"]:
                store.modify(str(message_id), add, remove)
        except LabelError as exc:
            return _invalid(f"Invalid label: {exc}")
        return Response(status_code=204)

    @api.post(base + "/messages/{message_id}/modify")
    async def modify(request: Request, user_id: str, message_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        body = await _json_body(request)
        if body is None:
            return _invalid("Invalid JSON payload")
        try:
            message = store.modify(
                message_id, body.get("addLabelIds") or [], body.get("removeLabelIds") or []
            )
        except LabelError as exc:
            return _invalid(f"Invalid label: {exc}")
        if message is None:
            return _not_found()
        return JSONResponse(_resource(message, "minimal", ()))

    async def _store_message(
        request: Request, user_id: str, *, send: bool, upload: bool
    ) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        metadata: dict[str, Any] | None
        raw: bytes | None
        if upload:
            kind = request.query_params.get("uploadType", "")
            body = await request.body()
            if kind == "media":
                metadata, raw = {}, body
            elif kind == "multipart":
                parts = _upload_parts(request.headers.get("content-type", ""), body)
                metadata, raw = parts if parts is not None else (None, None)
            else:
                return _invalid(f"uploadType {kind!r} is not supported by the stand-in")
        else:
            metadata = await _json_body(request)
            raw = _decode_raw(metadata.get("raw")) if metadata is not None else None
        if metadata is None or not raw:
            return _invalid("'raw' RFC822 payload or an upload via /upload/* is required")
        labels = list(metadata.get("labelIds") or [])
        if send:
            labels.append("SENT")
            recipients = _headers(raw, ("To", "Cc"))
            if any(store.email_address in h["value"] for h in recipients):
                labels.append("INBOX")
        try:
            message_id = store.insert(raw, labels, None)
        except LabelError as exc:
            return _invalid(f"Invalid label: {exc}")
        message = store.get(message_id)
        assert message is not None
        return JSONResponse(_resource(message, "minimal", ()))

    @api.post(base + "/messages")
    async def insert(request: Request, user_id: str) -> Response:
        return await _store_message(request, user_id, send=False, upload=False)

    @api.post(base + "/messages/send")
    async def send(request: Request, user_id: str) -> Response:
        return await _store_message(request, user_id, send=True, upload=False)

    @api.post("/upload" + base + "/messages")
    async def insert_upload(request: Request, user_id: str) -> Response:
        return await _store_message(request, user_id, send=False, upload=True)

    @api.post("/upload" + base + "/messages/send")
    async def send_upload(request: Request, user_id: str) -> Response:
        return await _store_message(request, user_id, send=True, upload=True)

    @api.get(base + "/labels")
    async def list_labels(request: Request, user_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        return JSONResponse({"labels": store.labels()})

    @api.post(base + "/labels")
    async def create_label(request: Request, user_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        body = await _json_body(request)
        name = str((body or {}).get("name") or "").strip()
        if not name:
            return _invalid("Invalid label name")
        label = store.create_label(name)
        if label is None:
            return _conflict("Label name exists or conflicts")
        return JSONResponse({**(body or {}), **label})

    @api.get(base + "/history")
    async def history(request: Request, user_id: str) -> Response:
        if (early := guard(request, user_id)) is not None:
            return early
        params = request.query_params
        try:
            start = int(params.get("startHistoryId", ""))
        except ValueError:
            return _invalid("Invalid startHistoryId")
        current = store.history_id
        records = store.history(start, params.getlist("historyTypes"), params.get("labelId"))
        if records is None:
            return _not_found()
        page, next_token = _page(records, request)
        body: dict[str, Any] = {"historyId": str(current)}
        if page:
            body["history"] = page
        if next_token:
            body["nextPageToken"] = next_token
        return JSONResponse(body)

    # The bundled discovery document sends batches to ``{rootUrl}batch``.
    api.include_router(batch.router(state))
    return api
