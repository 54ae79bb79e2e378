"""The archive in Google Drive: ``claims/YYYY/MM/DD/{email_id}_{filename}`` under a folder.

The folder (``DRIVE_FOLDER_ID``) is best in a shared drive: a service account owns no
storage of its own, so uploads into its "My Drive" fail. Every call sends
``supportsAllDrives=true`` (and ``files.list`` ``includeItemsFromAllDrives=true``,
scoped to the folder's shared drive), without which shared-drive items are invisible.

Idempotent by job id: each file carries ``appProperties.claims_ocr_job_id``, and
:meth:`DriveArchive.store` first looks the job up (``appProperties has {...}``): a
retry (a crash after the upload, before the outbox recorded it) gets the existing
file's location back without uploading again. Two stores of the same job racing past
that look-up both upload; afterwards each lists the job's files again and the oldest
(``createdTime``, then id) wins: a store whose own upload lost moves it to the trash
(trash, not delete: a shared drive's Content manager may trash but not delete) and
returns the winner's location. Drive's search index can lag a fresh upload by
seconds, so an immediate retry may still upload once more; the same rule then
settles on the oldest file at the next look.

The day folders are found by name, parent and folder type (the oldest wins if a race
made two), created when missing, and their ids cached per instance.

Large files (over ``resumable_threshold``) go up resumably in ``chunk_size`` chunks
(multiples of 256 KiB): the library retries a failed chunk ``num_retries`` times, and
if it still fails (or the connection drops) the upload asks the server how far it got
and carries on from there, up to ``num_retries`` times more. Smaller files go in one
multipart request.

Errors: :class:`~services.records.audit.RecordsUnavailable` (5xx, 429, rate-limit
403s, network; retry later) and :class:`~services.records.audit.RecordsMisconfigured`
(folder not found or not shared, no permission, no storage, bad credentials).
"""

from __future__ import annotations

import io
import json
import mimetypes
import random
import threading
import time
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import google.auth.exceptions
import httplib2
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from services.records.archive import safe_filename
from services.records.audit import (
    RecordsMisconfigured,
    RecordsUnavailable,
    parse_retry_after,
    records_errors,
)

#: OAuth scope the archive needs.
DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive",)

FOLDER_MIME = "application/vnd.google-apps.folder"
JOB_PROPERTY = "claims_ocr_job_id"
ROOT_NAME = "claims"
CHUNK_UNIT = 256 * 1024
LOCATION_PREFIX = "drive:"

_FILE_FIELDS = "id,name,parents,createdTime,appProperties,size"
_LIST_FIELDS = f"nextPageToken,files({_FILE_FIELDS})"
_RATE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded", "quotaExceeded"}
)
_QUOTA_WAIT_S = 60.0


class _BytesUpload(MediaIoBaseUpload):
    """Media the library reads as bytes per chunk, never as a stream.

    With a stream, ``next_chunk`` wraps the chunk in a slice once and resends that
    same, already-read slice when it retries: the retry announces the chunk's length,
    sends nothing and waits for a timeout. As bytes, every try re-reads its chunk.
    """

    def has_stream(self) -> bool:
        return False


def _quote(value: str) -> str:
    """A Drive query string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _oldest(files: list[dict[str, Any]]) -> dict[str, Any]:
    return min(files, key=lambda f: (f.get("createdTime", ""), f["id"]))


class DriveArchive:
    """:class:`~services.records.archive.Archive` in Google Drive (see the module doc).

    ``service`` is a Drive v3 resource (:func:`services.google.discovery.build_service`).
    One call at a time per instance (the Google client is not thread-safe).
    """

    def __init__(
        self,
        service: Any,
        folder_id: str,
        *,
        num_retries: int = 5,
        chunk_size: int = 5 * 1024 * 1024,
        resumable_threshold: int = 5 * 1024 * 1024,
    ) -> None:
        if not folder_id:
            raise RecordsMisconfigured("DRIVE_FOLDER_ID is empty: set the archive folder's id")
        if chunk_size <= 0 or chunk_size % CHUNK_UNIT:
            raise ValueError("chunk_size must be a positive multiple of 256 KiB")
        self.service = service
        self.folder_id = folder_id
        self.num_retries = num_retries
        self.chunk_size = chunk_size
        self.resumable_threshold = resumable_threshold
        self._lock = threading.RLock()
        self._scope: dict[str, Any] | None = None  # files.list corpus, from the root folder
        self._folders: dict[tuple[str, ...], str] = {}

    # -- the Archive protocol --------------------------------------------------------

    def store(
        self, job_id: str, filename: str, data: bytes, received_at: datetime, email_id: str = ""
    ) -> str:
        """Upload ``data`` unless the job is archived already; return ``drive:{file_id}``."""
        with self._lock, self._translated():
            existing = self._job_files(job_id)
            if existing:
                return LOCATION_PREFIX + _oldest(existing)["id"]
            folder = self._day_folder(received_at)
            name = f"{safe_filename(email_id or job_id)}_{safe_filename(filename)}"
            uploaded = self._upload(job_id, name, folder, data)
            return LOCATION_PREFIX + self._settle(job_id, uploaded)

    def find(self, job_id: str) -> str | None:
        with self._lock, self._translated():
            existing = self._job_files(job_id)
            return LOCATION_PREFIX + _oldest(existing)["id"] if existing else None

    def path_for(self, received_at: datetime) -> tuple[str, ...]:
        """The folder names a file received at ``received_at`` goes in (its own date)."""
        return (ROOT_NAME, f"{received_at:%Y}", f"{received_at:%m}", f"{received_at:%d}")

    # -- internals -------------------------------------------------------------------

    def _root(self) -> dict[str, Any]:
        """Check the configured folder once; learn the corpus to search (its shared drive)."""
        if self._scope is None:
            try:
                folder = self._execute(
                    self.service.files().get(
                        fileId=self.folder_id,
                        fields="id,name,mimeType,driveId,trashed,capabilities(canAddChildren)",
                        supportsAllDrives=True,
                    )
                )
            except HttpError as exc:
                if _status(exc) == 404:
                    raise _folder_not_found(self.folder_id) from exc
                raise
            if folder.get("mimeType") != FOLDER_MIME or folder.get("trashed"):
                raise RecordsMisconfigured(
                    f"DRIVE_FOLDER_ID {self.folder_id} is not a folder (or is in the trash)"
                )
            if folder.get("capabilities", {}).get("canAddChildren") is False:
                raise _no_permission(self.folder_id, "it is shared read-only")
            drive_id = folder.get("driveId")
            self._scope = (
                {"corpora": "drive", "driveId": drive_id} if drive_id else {"corpora": "user"}
            )
        return self._scope

    def _list(self, q: str) -> list[dict[str, Any]]:
        scope = self._root()
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            reply = self._execute(
                self.service.files().list(
                    q=q,
                    fields=_LIST_FIELDS,
                    pageSize=100,
                    pageToken=token,
                    spaces="drive",
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                    **scope,
                )
            )
            found += reply.get("files", [])
            token = reply.get("nextPageToken")
            if not token:
                return found

    def _job_files(self, job_id: str) -> list[dict[str, Any]]:
        return self._list(
            f"appProperties has {{ key={_quote(JOB_PROPERTY)} and value={_quote(job_id)} }}"
            " and trashed = false"
        )

    def _day_folder(self, received_at: datetime) -> str:
        parent = self.folder_id
        path = self.path_for(received_at)
        for depth in range(1, len(path) + 1):
            key = path[:depth]
            cached = self._folders.get(key)
            if cached is None:
                cached = self._child_folder(parent, key[-1])
                self._folders[key] = cached
            parent = cached
        return parent

    def _child_folder(self, parent: str, name: str) -> str:
        q = (
            f"name = {_quote(name)} and {_quote(parent)} in parents"
            f" and mimeType = {_quote(FOLDER_MIME)} and trashed = false"
        )
        found = self._list(q)
        if found:
            return str(_oldest(found)["id"])
        made = self._execute(
            self.service.files().create(
                body={"name": name, "mimeType": FOLDER_MIME, "parents": [parent]},
                fields="id,createdTime",
                supportsAllDrives=True,
            )
        )
        # Another writer may have made the same folder meanwhile: all settle on the oldest.
        # (Search may not show ours yet, so it is always a candidate.)
        candidates = {f["id"]: f for f in self._list(q)}
        candidates.setdefault(made["id"], made)
        return str(_oldest(list(candidates.values()))["id"])

    def _upload(self, job_id: str, name: str, folder: str, data: bytes) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        resumable = len(data) > self.resumable_threshold
        media = _BytesUpload(
            io.BytesIO(data), mimetype=mimetype, chunksize=self.chunk_size, resumable=resumable
        )
        request = self.service.files().create(
            body={"name": name, "parents": [folder], "appProperties": {JOB_PROPERTY: job_id}},
            media_body=media,
            fields=_FILE_FIELDS,
            supportsAllDrives=True,
        )
        if not resumable:
            return self._execute(request)
        response: dict[str, Any] | None = None
        resumes = 0
        while response is None:
            try:
                _, response = request.next_chunk(num_retries=self.num_retries)
            except (HttpError, OSError, httplib2.HttpLib2Error) as exc:
                # The library already retried this chunk; resume from what the server
                # has (next_chunk asks it) unless the session is gone or we tried enough.
                status = _status(exc) if isinstance(exc, HttpError) else None
                transient = status is None or status in (408, 429) or status >= 500
                if not transient or request.resumable_uri is None or resumes >= self.num_retries:
                    raise
                resumes += 1
                time.sleep(random.random() * 2**resumes)
        return response

    def _settle(self, job_id: str, uploaded: dict[str, Any]) -> str:
        """After an upload: if the job has older files (a racing store), keep the oldest."""
        candidates = {f["id"]: f for f in self._job_files(job_id)}
        candidates.setdefault(uploaded["id"], uploaded)
        keeper = _oldest(list(candidates.values()))
        if keeper["id"] != uploaded["id"]:
            self._execute(
                self.service.files().update(
                    fileId=uploaded["id"],
                    body={"trashed": True},
                    fields="id",
                    supportsAllDrives=True,
                )
            )
        return str(keeper["id"])

    def _execute(self, request: Any) -> dict[str, Any]:
        result = request.execute(num_retries=self.num_retries)
        return result if isinstance(result, dict) else {}

    def _translated(self) -> AbstractContextManager[None]:
        return records_errors(lambda exc: translate_error(exc, self.folder_id), self._forget)

    def _forget(self) -> None:
        """After a failure, re-check the folder and re-find the day folders next time."""
        self._scope = None
        self._folders.clear()


def _status(exc: HttpError) -> int:
    return int(getattr(exc.resp, "status", 0) or 0)


def _reason(exc: HttpError) -> tuple[str, str]:
    """Google's ``errors[0].reason`` and ``message``, where the body has them."""
    try:
        body = json.loads(exc.content.decode("utf-8") if isinstance(exc.content, bytes) else "")
        error = body.get("error", {})
        errors = error.get("errors") or [{}]
        return str(errors[0].get("reason", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        return "", ""


def _retry_after(exc: HttpError) -> float | None:
    return parse_retry_after(exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None)


def _folder_not_found(folder_id: str) -> RecordsMisconfigured:
    return RecordsMisconfigured(
        f"DRIVE_FOLDER_ID {folder_id} not found or not shared with the service account: "
        "check the id, and share the folder (or its shared drive) with the service account"
    )


def _no_permission(folder_id: str, detail: str) -> RecordsMisconfigured:
    return RecordsMisconfigured(
        f"cannot write in DRIVE_FOLDER_ID {folder_id} ({detail}): add the service account "
        "to the folder's shared drive as Content manager"
    )


def translate_error(
    exc: BaseException, folder_id: str
) -> RecordsUnavailable | RecordsMisconfigured | None:
    """The records error for a Drive client failure (``None``: not one of ours)."""
    if isinstance(exc, HttpError):
        status = _status(exc)
        reason, message = _reason(exc)
        retry_after = _retry_after(exc)
        if status in (408, 429) or status >= 500:
            if status == 429 and retry_after is None:
                retry_after = _QUOTA_WAIT_S
            return RecordsUnavailable(
                f"Drive answered {status}: {message or reason}", retry_after_s=retry_after
            )
        if status == 403 and reason in _RATE_REASONS:
            return RecordsUnavailable(
                f"Drive quota: {message or reason}", retry_after_s=retry_after or _QUOTA_WAIT_S
            )
        if status == 403 and reason == "storageQuotaExceeded":
            return RecordsMisconfigured(
                f"no Drive storage for the upload ({message}): a service account owns no "
                "storage, so DRIVE_FOLDER_ID must be a folder in a shared drive"
            )
        if status == 403:
            return _no_permission(folder_id, f"403 {reason or message}")
        if status == 401:
            return RecordsMisconfigured(
                f"Drive rejected the credentials (401: {message}): check the service account key"
            )
        if status == 404:
            # The root folder was found before; something under it vanished (a folder
            # trashed by hand, an expired upload session): start over next time.
            return RecordsUnavailable(f"Drive item vanished (404: {message}); will look again")
        return RecordsMisconfigured(f"Drive rejected the request ({status}: {message or reason})")
    if isinstance(exc, OSError | httplib2.HttpLib2Error | google.auth.exceptions.TransportError):
        return RecordsUnavailable(f"Drive unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, google.auth.exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return RecordsUnavailable(f"Google token refresh failed (transient): {exc}")
        return RecordsMisconfigured(
            f"Google rejected the Drive credentials: {exc}. Check the service account key."
        )
    return None


def check_access(service: Any, folder_id: str) -> None:
    """Raise :class:`RecordsMisconfigured` (what to fix) unless the folder can take files.

    For the operator's doctor command: the folder exists, is shared with the service
    account, is a folder, and the account may add to it. Nothing is written.
    """
    archive = DriveArchive(service, folder_id)
    with archive._translated():
        archive._root()
