"""Drive v3 as the archive uses it: folders, uploads (multipart, media, resumable), queries.

Routes: ``files.list`` (``q`` clauses joined by ``and``: ``name =``, ``'ID' in parents``,
``mimeType =``/``!=``, ``trashed =``, ``appProperties has { key='K' and value='V' }``;
``pageSize``/``pageToken``), ``files.get`` (``alt=media`` for content), ``files.create``
(metadata only: folders, and spreadsheets for gspread's ``create``, which also appear
in the Sheets store), ``files.update`` (PATCH), ``files.delete``, ``permissions.create``,
and uploads at ``/upload/drive/v3/files``: ``uploadType=multipart|media|resumable``,
resumable answering an absolute ``Location`` for ``PUT`` chunks (``308`` with ``Range``
until the last; ``bytes */N`` asks how far it got).

Like Drive, items in a shared drive are invisible to calls without
``supportsAllDrives=true`` (and to ``files.list`` without
``includeItemsFromAllDrives=true``): a client that forgets the flags gets 404s here
too. Every route first answers an injected fault; :meth:`DriveStore.fail_chunks`
makes the next resumable chunks fail, to test resuming.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.demo.google_standin import sheets as sheets_api
from services.demo.google_standin.state import GoogleStandinState, google_error

FOLDER = "application/vnd.google-apps.folder"
SPREADSHEET = "application/vnd.google-apps.spreadsheet"
CHUNK_UNIT = 256 * 1024


class DriveError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


def _not_found(file_id: str) -> DriveError:
    return DriveError(404, f"File not found: {file_id}.", "notFound")


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    created_time: str
    app_properties: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    drive_id: str | None = None
    trashed: bool = False

    def resource(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": list(self.parents),
            "createdTime": self.created_time,
            "modifiedTime": self.created_time,
            "trashed": self.trashed,
            "appProperties": dict(self.app_properties),
        }
        if self.content is not None:
            out["size"] = str(len(self.content))
        if self.drive_id:
            out["driveId"] = self.drive_id
        if self.mime_type == FOLDER:
            out["capabilities"] = {"canAddChildren": True}
        return out


@dataclass
class _Session:
    metadata: dict[str, Any]
    params: dict[str, str]
    content_type: str
    total: int | None
    received: bytearray = field(default_factory=bytearray)


class DriveStore:
    """The stand-in's files (thread-safe), with what tests look at."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._files: dict[str, DriveFile] = {}
        self._sessions: dict[str, _Session] = {}
        #: Upload requests that started or made a file (multipart, media, resumable start).
        self.uploads = 0
        #: Resumable chunk PUTs received (status queries excluded).
        self.chunks = 0
        #: Every request: (method, path, query params).
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: Permissions granted: (file id, body).
        self.permissions: list[tuple[str, dict[str, Any]]] = []
        self._chunk_faults: list[tuple[int, bool]] = []
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)

    # -- for tests -------------------------------------------------------------------

    def add_folder(self, name: str, parent: str | None = None, drive_id: str | None = None) -> str:
        """A folder (in shared drive ``drive_id`` if given); returns its id."""
        with self.lock:
            if parent is not None and drive_id is None:
                drive_id = self._files[parent].drive_id
            folder = self._new(name, FOLDER, [parent] if parent else [], drive_id=drive_id)
            return folder.id

    def files(self, include_trashed: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            return [f.resource() for f in self._files.values() if include_trashed or not f.trashed]

    def content(self, file_id: str) -> bytes:
        with self.lock:
            data = self._files[file_id].content
            if data is None:
                raise KeyError(f"{file_id} has no content")
            return data

    def path(self, file_id: str) -> str:
        """``folder/sub/name`` up to a folder without a parent."""
        with self.lock:
            parts: list[str] = []
            current: str | None = file_id
            while current is not None and current in self._files:
                found = self._files[current]
                parts.append(found.name)
                current = found.parents[0] if found.parents else None
            return "/".join(reversed(parts))

    def fail_chunks(
        self, count: int = 1, *, status: int = 503, after_storing: bool = False
    ) -> None:
        """The next ``count`` resumable chunk PUTs answer ``status``.

        ``after_storing``: the bytes are kept but the reply is an error anyway (the
        server got the chunk, the client never heard).
        """
        with self.lock:
            self._chunk_faults.extend((status, after_storing) for _ in range(count))

    # -- operations ------------------------------------------------------------------

    def _now(self) -> str:
        # Strictly increasing creation times (a real clock can tie within a millisecond).
        self._clock = max(self._clock + timedelta(milliseconds=1), datetime.now(UTC))
        return self._clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _new(
        self,
        name: str,
        mime_type: str,
        parents: list[str],
        *,
        app_properties: dict[str, str] | None = None,
        content: bytes | None = None,
        drive_id: str | None = None,
    ) -> DriveFile:
        created = DriveFile(
            id="1" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y"),
            name=name,
            mime_type=mime_type,
            parents=parents,
            created_time=self._now(),
            app_properties=app_properties or {},
            content=content,
            drive_id=drive_id,
        )
        self._files[created.id] = created
        return created

    def visible(self, file_id: str, all_drives: bool) -> DriveFile:
        found = self._files.get(file_id)
        if found is None or (found.drive_id and not all_drives):
            raise _not_found(file_id)
        return found

    def create(
        self, metadata: dict[str, Any], all_drives: bool, content: bytes | None = None
    ) -> DriveFile:
        with self.lock:
            parents = list(metadata.get("parents") or [])
            drive_id: str | None = None
            for parent in parents:
                folder = self.visible(parent, all_drives)
                if folder.mime_type != FOLDER:
                    raise DriveError(400, f"The parent {parent} is not a folder.", "invalidParent")
                drive_id = folder.drive_id
            mime_type = metadata.get("mimeType") or "application/octet-stream"
            props = metadata.get("appProperties") or {}
            return self._new(
                metadata.get("name") or "Untitled",
                mime_type,
                parents,
                app_properties={str(k): str(v) for k, v in props.items()},
                content=None if mime_type in (FOLDER, SPREADSHEET) else content or b"",
                drive_id=drive_id,
            )

    def update(self, file_id: str, body: dict[str, Any], all_drives: bool) -> DriveFile:
        with self.lock:
            found = self.visible(file_id, all_drives)
            if "name" in body:
                found.name = body["name"]
            if "trashed" in body:
                found.trashed = bool(body["trashed"])
            for key, value in (body.get("appProperties") or {}).items():
                if value is None:
                    found.app_properties.pop(key, None)
                else:
                    found.app_properties[key] = str(value)
            return found

    def delete(self, file_id: str, all_drives: bool) -> None:
        with self.lock:
            self.visible(file_id, all_drives)
            doomed = [file_id]
            while doomed:  # a folder takes its children with it
                current = doomed.pop()
                self._files.pop(current, None)
                doomed += [f.id for f in self._files.values() if current in f.parents]

    def search(self, q: str, all_drives: bool, page_size: int, page_token: str) -> dict[str, Any]:
        predicate = parse_query(q)
        with self.lock:
            matches = [
                f for f in self._files.values() if (all_drives or not f.drive_id) and predicate(f)
            ]
        start = int(page_token) if page_token else 0
        page = matches[start : start + page_size]
        out: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [f.resource() for f in page],
        }
        if start + page_size < len(matches):
            out["nextPageToken"] = str(start + page_size)
        return out

    def start_session(
        self, metadata: dict[str, Any], params: dict[str, str], content_type: str, total: int | None
    ) -> str:
        with self.lock:
            session_id = secrets.token_urlsafe(16)
            self._sessions[session_id] = _Session(metadata, params, content_type, total)
            return session_id

    def take_chunk_fault(self) -> tuple[int, bool] | None:
        with self.lock:
            return self._chunk_faults.pop(0) if self._chunk_faults else None

    def session(self, session_id: str) -> _Session:
        found = self._sessions.get(session_id)
        if found is None:
            raise DriveError(404, "Upload session not found or expired.", "notFound")
        return found

    def finish(self, session_id: str) -> DriveFile:
        with self.lock:
            sess = self._sessions.pop(session_id)
            metadata = dict(sess.metadata)
            metadata.setdefault("mimeType", sess.content_type)
            all_drives = _flag(sess.params, "supportsAllDrives")
            return self.create(metadata, all_drives, bytes(sess.received))


# -- the query language (the subset the archive uses) -------------------------------

_STRING = r"'((?:[^'\\]|\\.)*)'"


_APP_PROPERTY = (
    rf"appProperties\s+has\s+\{{\s*key\s*=\s*{_STRING}\s+and\s+value\s*=\s*{_STRING}\s*\}}"
)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _split_and(q: str) -> list[str]:
    """Split on ``and`` outside quotes and braces."""
    parts: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    while i < len(q):
        ch = q[i]
        if quoted:
            if ch == "\\":
                i += 2
                continue
            if ch == "'":
                quoted = False
        elif ch == "'":
            quoted = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            m = re.match(r"\s+and\s+", q[i:], re.IGNORECASE)
            if m is not None:
                parts.append(q[start:i])
                i += m.end()
                start = i
                continue
        i += 1
    parts.append(q[start:])
    return [p.strip() for p in parts if p.strip()]


def _clause(text: str) -> Callable[[DriveFile], bool]:
    if m := re.fullmatch(rf"name\s*=\s*{_STRING}", text):
        name = _unescape(m.group(1))
        return lambda f: f.name == name
    if m := re.fullmatch(rf"name\s+contains\s+{_STRING}", text):
        part = _unescape(m.group(1))
        return lambda f: part in f.name
    if m := re.fullmatch(rf"{_STRING}\s+in\s+parents", text):
        parent = _unescape(m.group(1))
        return lambda f: parent in f.parents
    if m := re.fullmatch(rf"mimeType\s*(=|!=)\s*{_STRING}", text):
        negate, mime = m.group(1) == "!=", _unescape(m.group(2))
        return lambda f: (f.mime_type == mime) != negate
    if m := re.fullmatch(r"trashed\s*=\s*(true|false)", text, re.IGNORECASE):
        trashed = m.group(1).lower() == "true"
        return lambda f: f.trashed == trashed
    if m := re.fullmatch(_APP_PROPERTY, text):
        key, value = _unescape(m.group(1)), _unescape(m.group(2))
        return lambda f: f.app_properties.get(key) == value
    raise DriveError(400, f"Invalid Value: the stand-in does not understand {text!r}", "invalid")


def parse_query(q: str) -> Callable[[DriveFile], bool]:
    """A predicate for a Drive ``q`` (clauses joined by ``and``; 400 for anything else)."""
    clauses = [_clause(part) for part in _split_and(q)] if q.strip() else []
    return lambda f: all(c(f) for c in clauses)


# -- routes --------------------------------------------------------------------------


def store_of(state: GoogleStandinState) -> DriveStore:
    found = state.stores.get("drive")
    if found is None:
        found = state.stores.setdefault("drive", DriveStore())
    return found


def router(state: GoogleStandinState) -> APIRouter:
    drive = store_of(state)
    sheets = sheets_api.store_of(state)
    api = APIRouter()

    def guard(request: Request) -> Response | None:
        drive.requests.append((request.method, request.url.path, dict(request.query_params)))
        return state.fault_response("drive")

    def answer(call: Callable[[], Any], status: int = 200) -> Response:
        try:
            result = call()
        except DriveError as exc:
            return google_error(exc.status, exc.reason or "badRequest", message=exc.message)
        except (KeyError, ValueError, json.JSONDecodeError) as exc:
            return google_error(400, "badRequest", message=f"Bad Request: {exc}")
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(result, status_code=status)

    def created(
        metadata: dict[str, Any], all_drives: bool, content: bytes | None
    ) -> dict[str, Any]:
        found = drive.create(metadata, all_drives, content)
        if found.mime_type == SPREADSHEET:
            sheets.create(found.name, spreadsheet_id=found.id)
        return found.resource()

    @api.get("/drive/v3/files")
    async def list_files(request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        p = request.query_params
        all_drives = _flag(p, "supportsAllDrives") and _flag(p, "includeItemsFromAllDrives")
        return answer(
            lambda: drive.search(
                p.get("q", ""),
                all_drives,
                min(int(p.get("pageSize", "100")), 1000),
                p.get("pageToken", ""),
            )
        )

    @api.get("/drive/v3/files/{file_id}")
    async def get_file(file_id: str, request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        p = request.query_params
        try:
            found = drive.visible(file_id, _flag(p, "supportsAllDrives"))
        except DriveError as exc:
            return google_error(exc.status, exc.reason, message=exc.message)
        if p.get("alt") == "media":
            if found.content is None:
                return google_error(
                    403,
                    "fileNotDownloadable",
                    message="Only files with binary content can be downloaded.",
                )
            return Response(found.content, media_type=found.mime_type)
        return JSONResponse(found.resource())

    @api.post("/drive/v3/files")
    async def create_file(request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        body = await _json(request)
        return answer(lambda: created(body, _flag(request.query_params, "supportsAllDrives"), None))

    @api.patch("/drive/v3/files/{file_id}")
    async def update_file(file_id: str, request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        body = await _json(request)
        all_drives = _flag(request.query_params, "supportsAllDrives")
        return answer(lambda: drive.update(file_id, body, all_drives).resource())

    @api.delete("/drive/v3/files/{file_id}")
    async def delete_file(file_id: str, request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        all_drives = _flag(request.query_params, "supportsAllDrives")
        return answer(lambda: drive.delete(file_id, all_drives), status=204)

    @api.post("/drive/v3/files/{file_id}/permissions")
    async def share(file_id: str, request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        body = await _json(request)
        all_drives = _flag(request.query_params, "supportsAllDrives")

        def grant() -> dict[str, Any]:
            drive.visible(file_id, all_drives)
            drive.permissions.append((file_id, body))
            return {"kind": "drive#permission", "id": secrets.token_hex(8), **body}

        return answer(grant)

    @api.post("/upload/drive/v3/files")
    async def upload(request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        p = request.query_params
        kind = p.get("uploadType", "media")
        all_drives = _flag(p, "supportsAllDrives")
        raw = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream")
        with drive.lock:
            drive.uploads += 1
        if kind == "multipart":
            try:
                metadata, media_type, content = _multipart(content_type, raw)
            except ValueError as exc:
                return google_error(400, "badContent", message=str(exc))
            metadata.setdefault("mimeType", media_type)
            return answer(lambda: created(metadata, all_drives, content))
        if kind == "media":
            return answer(lambda: created({"mimeType": content_type}, all_drives, raw))
        if kind == "resumable":
            metadata = json.loads(raw) if raw else {}
            total = request.headers.get("x-upload-content-length")
            try:
                for parent in metadata.get("parents") or []:
                    drive.visible(parent, all_drives)  # fail now, as Drive does
            except DriveError as exc:
                return google_error(exc.status, exc.reason, message=exc.message)
            session_id = drive.start_session(
                metadata,
                dict(p),
                request.headers.get("x-upload-content-type", "application/octet-stream"),
                int(total) if total else None,
            )
            location = (
                f"{request.base_url}upload/drive/v3/files"
                f"?uploadType=resumable&upload_id={session_id}"
            )
            return Response(status_code=200, headers={"Location": location})
        return google_error(400, "invalid", message=f"Invalid uploadType: {kind}")

    @api.put("/upload/drive/v3/files")
    async def upload_chunk(request: Request) -> Response:
        blocked = guard(request)
        if blocked is not None:
            return blocked
        session_id = request.query_params.get("upload_id", "")
        raw = await request.body()
        header = request.headers.get("content-range", "")
        try:
            sess = drive.session(session_id)
        except DriveError as exc:
            return google_error(exc.status, exc.reason, message=exc.message)
        if m := re.fullmatch(r"bytes \*/(\d+|\*)", header):  # how far did it get?
            if m.group(1) != "*":
                sess.total = int(m.group(1))
            if sess.total is not None and len(sess.received) == sess.total:
                return answer(lambda: drive.finish(session_id).resource())
            return _incomplete(len(sess.received))
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", header)
        if m is None:
            if not header and not raw and sess.total == 0:
                return answer(lambda: drive.finish(session_id).resource())
            return google_error(400, "badContent", message=f"bad Content-Range: {header!r}")
        first, last = int(m.group(1)), int(m.group(2))
        if m.group(3) != "*":
            sess.total = int(m.group(3))
        if last - first + 1 != len(raw) or first > len(sess.received):
            return google_error(400, "badContent", message="chunk does not continue the upload")
        final = sess.total is not None and last + 1 == sess.total
        if not final and len(raw) % CHUNK_UNIT:
            return google_error(400, "badContent", message="chunks must be multiples of 256 KiB")
        with drive.lock:
            drive.chunks += 1
        fault = drive.take_chunk_fault()
        if fault is not None and not fault[1]:
            return google_error(fault[0])
        del sess.received[first:]
        sess.received += raw
        if fault is not None:
            return google_error(fault[0])
        if final:
            return answer(lambda: drive.finish(session_id).resource())
        return _incomplete(len(sess.received))

    return api


def _incomplete(received: int) -> Response:
    headers = {"Range": f"bytes=0-{received - 1}"} if received else {}
    return Response(status_code=308, headers=headers)


def _flag(params: Any, name: str) -> bool:
    return str(params.get(name, "")).lower() == "true"


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    parsed = json.loads(raw) if raw else {}
    return parsed if isinstance(parsed, dict) else {}


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], str, bytes]:
    """(metadata, media type, media bytes) of a ``multipart/related`` upload."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if m is None or not content_type.startswith("multipart/related"):
        raise ValueError("multipart upload without a multipart/related boundary")
    delimiter = b"--" + m.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n").removeprefix(b"\n")
        for sep in (b"\r\n\r\n", b"\n\n"):
            head, found, content = chunk.partition(sep)
            if found:
                break
        else:
            raise ValueError("multipart part without headers")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head.decode("latin-1").splitlines())
        }
        parts.append((headers, content))
    if len(parts) != 2:
        raise ValueError(f"multipart upload with {len(parts)} parts (want metadata and media)")
    metadata = json.loads(parts[0][1] or b"{}")
    return metadata, parts[1][0].get("content-type", "application/octet-stream"), parts[1][1]
