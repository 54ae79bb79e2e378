"""The audit log in a Google Sheet: one tab per month, one row per job.

Rows go to the tab of their ``received_at`` month (``Audit 2026-12``: the row's own
calendar month, so a retry lands in the same tab), created on demand with the header
row (:data:`~services.records.audit.COLUMNS`) frozen. Values are written ``RAW``:
member-supplied text is never evaluated as a formula (the formula guard of
:meth:`AuditRow.to_cells` stays as a second layer for anyone exporting to CSV).

Exactly once, by job id: the deliverer may hand :meth:`SheetsAuditLog.append_many` a
batch whose previous attempt was written but not recorded (a crash, a lost reply).
Each call therefore reads the job-id column (A) of the tabs it writes to (one
``values:batchGet``) and appends only the rows whose job id is not there yet; within
one call a job id counts once (the first row wins). Two writers racing on the same
job could still both append: the deliverer's lease keeps to one writer at a time.

Requests: per call, one read of column A, one append per tab touched, plus one
``batchUpdate`` per new tab (and a metadata read when a tab is not known yet). Sheets
allows 60 write requests per minute per user; a rolling window keeps this instance
under ``writes_per_minute`` (and reads under ``reads_per_minute``) by sleeping.

Errors: :class:`~services.records.audit.RecordsUnavailable` for what a retry can fix
(5xx, 429/rate-limit 403, timeouts, connection errors),
:class:`~services.records.audit.RecordsMisconfigured` for what an operator must
(403 not shared, 404 wrong id, 401 bad credentials, 400 rejected request).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import google.auth.exceptions
import gspread
import requests
from google.auth.credentials import Credentials
from google.auth.transport.requests import AuthorizedSession
from gspread.exceptions import APIError, SpreadsheetNotFound
from gspread.utils import ValueInputOption, absolute_range_name
from requests.adapters import HTTPAdapter

from services.records.audit import (
    COLUMNS,
    AuditRow,
    RecordsMisconfigured,
    RecordsUnavailable,
    _from_text_cell,
    parse_retry_after,
    records_errors,
)

#: OAuth scopes the Sheets audit log needs (``drive.file`` only for :func:`create_spreadsheet`).
SHEETS_SCOPES = (
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive.file",
)

#: Hosts gspread calls (Sheets v4, and Drive v3 for create/share).
_GOOGLE_PREFIXES = ("https://sheets.googleapis.com/", "https://www.googleapis.com/")

#: 403 reasons that mean "slow down", not "no access".
_RATE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)

#: Sheets' per-minute quotas refill within a minute: the wait when a 429 names none.
QUOTA_WINDOW_S = 60.0

#: Rows a new tab starts with (the grid grows as rows are appended).
_NEW_TAB_ROWS = 1000

#: Longest text a Sheets cell holds.
_MAX_CELL = 50_000


class _HostRewrite(HTTPAdapter):
    """Sends every request to ``base`` instead of the Google host it names."""

    def __init__(self, base: str) -> None:
        super().__init__()
        parts = urlsplit(base)
        self._scheme, self._netloc = parts.scheme, parts.netloc
        self._prefix = parts.path.rstrip("/")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(request.url or "")
        request.url = urlunsplit(
            (self._scheme, self._netloc, self._prefix + parts.path, parts.query, parts.fragment)
        )
        return super().send(request, *args, **kwargs)


def sheets_client(
    credentials: Credentials, root_url: str = "", *, timeout_s: float = 60.0
) -> gspread.Client:
    """A gspread client; ``root_url`` (e.g. a stand-in) replaces Google's hosts when set.

    gspread has no base-URL setting, so a session adapter rewrites the scheme and host
    of every Sheets and Drive request. ``timeout_s`` bounds each request: a hung call
    must not hold the deliverer's lease forever.
    """
    if not root_url:
        client = gspread.Client(auth=credentials)
    else:
        session = AuthorizedSession(credentials)
        adapter = _HostRewrite(root_url)
        for prefix in _GOOGLE_PREFIXES:
            session.mount(prefix, adapter)
        client = gspread.Client(auth=credentials, session=session)
    client.set_timeout(timeout_s)
    return client


class _RateWindow:
    """At most ``limit`` events in any rolling ``window_s``: ``take`` sleeps when over."""

    def __init__(
        self,
        limit: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        max_wait_s: float | None,
        window_s: float = QUOTA_WINDOW_S,
    ) -> None:
        if limit < 1:
            raise ValueError("a per-minute limit must be at least 1")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._max_wait_s = max_wait_s
        self._times: deque[float] = deque()

    def take(self) -> None:
        while True:
            now = self._clock()
            while self._times and now - self._times[0] >= self.window_s:
                self._times.popleft()
            if len(self._times) < self.limit:
                self._times.append(now)
                return
            wait = self._times[0] + self.window_s - now
            if self._max_wait_s is not None and wait > self._max_wait_s:
                raise RecordsUnavailable(
                    f"Sheets write budget spent for {wait:.0f}s", retry_after_s=wait
                )
            self._sleep(wait)


class SheetsAuditLog:
    """:class:`~services.records.audit.AuditLog` in a Google Sheet (see the module doc).

    ``clock``/``sleep`` drive the rate limiter (tests inject their own);
    ``max_wait_s`` makes the limiter raise :class:`RecordsUnavailable` instead of
    sleeping longer than that (``None``: always sleep, up to a minute). Thread-safe:
    one call at a time per instance.
    """

    def __init__(
        self,
        client: gspread.Client,
        spreadsheet_id: str,
        *,
        tab_prefix: str = "Audit",
        writes_per_minute: int = 50,
        reads_per_minute: int = 50,
        max_wait_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not spreadsheet_id:
            raise RecordsMisconfigured("SHEETS_SPREADSHEET_ID is empty: set the audit sheet's id")
        self.client = client
        self.spreadsheet_id = spreadsheet_id
        self.tab_prefix = tab_prefix
        self._writes = _RateWindow(writes_per_minute, clock, sleep, max_wait_s)
        self._reads = _RateWindow(reads_per_minute, clock, sleep, max_wait_s)
        self._tab_pattern = re.compile(re.escape(tab_prefix) + r" \d{4}-\d{2}")
        self._lock = threading.Lock()
        self._spreadsheet: gspread.Spreadsheet | None = None
        self._tabs: dict[str, gspread.Worksheet] | None = None
        #: Job ids known to be in each tab (refreshed at every append_many).
        self._ids: dict[str, set[str]] = {}

    # -- the AuditLog protocol -------------------------------------------------------

    def append(self, row: AuditRow) -> None:
        """Add ``row`` unless its job already has a row."""
        self.append_many([row])

    def contains(self, job_id: str) -> bool:
        """Whether any month tab holds a row for ``job_id`` (reads the sheet if not cached)."""
        with self._lock, self._translated():
            if any(job_id in ids for ids in self._ids.values()):
                return True
            tabs = [t for t in self._worksheets(refresh=True) if self._tab_pattern.fullmatch(t)]
            for tab, (ids, _) in self._read_ids(tabs).items():
                self._ids[tab] = ids
            return any(job_id in ids for ids in self._ids.values())

    def job_ids(self) -> list[str]:
        """Every row's job id in every month tab, repeats kept (for ``claims-ocr check``)."""
        with self._lock, self._translated():
            tabs = [t for t in self._worksheets(refresh=True) if self._tab_pattern.fullmatch(t)]
            return [job_id for ids, _ in self._read_column(tabs).values() for job_id in ids]

    # -- batches ---------------------------------------------------------------------

    def tab_for(self, received_at: datetime) -> str:
        """The tab a row received at ``received_at`` goes to (its own calendar month)."""
        return f"{self.tab_prefix} {received_at:%Y-%m}"

    def append_many(self, rows: Sequence[AuditRow]) -> int:
        """Append the rows whose job id is not in the sheet yet; return how many.

        Rows keep their order within each tab; rows of several months go to their
        tabs with one append per tab. If a call fails part-way (one tab written,
        the next not), calling again with the same rows writes only what is missing.
        """
        unique: dict[str, AuditRow] = {}
        for row in rows:
            unique.setdefault(row.job_id, row)
        groups: dict[str, list[AuditRow]] = {}
        for row in unique.values():
            groups.setdefault(self.tab_for(row.received_at), []).append(row)
        if not groups:
            return 0
        with self._lock, self._translated():
            worksheets = self._ensure_tabs(list(groups))
            present = self._read_ids(list(groups))
            appended = 0
            for tab, group in groups.items():
                ids, started = present[tab]
                self._ids[tab] = ids
                new = [row for row in group if row.job_id not in ids]
                values = [] if started else [list(COLUMNS)]
                values += [_capped(row.to_cells()) for row in new]
                if not values:
                    continue
                self._writes.take()
                worksheets[tab].append_rows(
                    values, value_input_option=ValueInputOption.raw, table_range="A1"
                )
                ids.update(row.job_id for row in new)
                appended += len(new)
            return appended

    def ensure_tab(self, month: datetime | None = None) -> str:
        """Create ``month``'s tab (default: this month, UTC) with its header if missing."""
        tab = self.tab_for(month or datetime.now(UTC))
        with self._lock, self._translated():
            worksheets = self._ensure_tabs([tab])
            (_, started) = self._read_ids([tab])[tab]
            if not started:
                self._writes.take()
                worksheets[tab].append_rows(
                    [list(COLUMNS)], value_input_option=ValueInputOption.raw, table_range="A1"
                )
        return tab

    # -- internals -------------------------------------------------------------------

    def _open(self) -> gspread.Spreadsheet:
        if self._spreadsheet is None:
            self._reads.take()
            self._spreadsheet = self.client.open_by_key(self.spreadsheet_id)
        return self._spreadsheet

    def _worksheets(self, refresh: bool = False) -> dict[str, gspread.Worksheet]:
        if self._tabs is None or refresh:
            spreadsheet = self._open()
            self._reads.take()
            self._tabs = {ws.title: ws for ws in spreadsheet.worksheets()}
        return self._tabs

    def _ensure_tabs(self, tabs: list[str]) -> dict[str, gspread.Worksheet]:
        fresh = self._tabs is None
        known = self._worksheets()
        if not fresh and any(tab not in known for tab in tabs):
            known = self._worksheets(refresh=True)  # another writer may have added it
        for tab in tabs:
            if tab not in known:
                known[tab] = self._add_tab(tab)
        return known

    def _add_tab(self, tab: str) -> gspread.Worksheet:
        spreadsheet = self._open()
        properties = {
            "title": tab,
            "gridProperties": {
                "rowCount": _NEW_TAB_ROWS,
                "columnCount": len(COLUMNS),
                "frozenRowCount": 1,
            },
        }
        self._writes.take()
        try:
            body = {"requests": [{"addSheet": {"properties": properties}}]}
            reply = spreadsheet.batch_update(body)
        except APIError as exc:
            if exc.code == 400 and "already exists" in str(exc.error.get("message", "")):
                existing = self._worksheets(refresh=True).get(tab)
                if existing is not None:
                    return existing
            raise
        added = reply["replies"][0]["addSheet"]["properties"]
        return gspread.Worksheet(spreadsheet, added, spreadsheet.id, spreadsheet.client)

    def _read_ids(self, tabs: list[str]) -> dict[str, tuple[set[str], bool]]:
        """Each tab's job ids (column A), and whether the tab has anything in it yet.

        An empty column A means a new tab (or one whose creation was cut short
        before its header was written): the next append then starts with the header.
        """
        return {tab: (set(ids), started) for tab, (ids, started) in self._read_column(tabs).items()}

    def _read_column(self, tabs: list[str]) -> dict[str, tuple[list[str], bool]]:
        if not tabs:
            return {}
        spreadsheet = self._open()
        self._reads.take()
        reply = spreadsheet.values_batch_get(
            [absolute_range_name(tab, "A:A") for tab in tabs], params={"majorDimension": "COLUMNS"}
        )
        out: dict[str, tuple[list[str], bool]] = {}
        for tab, value_range in zip(tabs, reply.get("valueRanges", []), strict=True):
            column = (value_range.get("values") or [[]])[0]
            cells = column[1:] if column and column[0] == COLUMNS[0] else column
            out[tab] = ([_from_text_cell(cell) or "" for cell in cells if cell], bool(column))
        return out

    def _forget(self) -> None:
        """Drop everything cached: after a failure, trust nothing until re-read."""
        self._spreadsheet = None
        self._tabs = None
        self._ids.clear()

    def _translated(self) -> AbstractContextManager[None]:
        return records_errors(lambda exc: translate_error(exc, self.spreadsheet_id), self._forget)


def _capped(cells: list[str]) -> list[str]:
    return [c if len(c) <= _MAX_CELL else c[: _MAX_CELL - 1] + "…" for c in cells]


def translate_error(
    exc: BaseException, spreadsheet_id: str
) -> RecordsUnavailable | RecordsMisconfigured | None:
    """The records error for a gspread/requests/google-auth failure (``None``: not ours)."""
    if isinstance(exc, SpreadsheetNotFound):
        return _not_found(spreadsheet_id)
    if isinstance(exc, PermissionError) and isinstance(exc.__cause__, APIError):
        exc = exc.__cause__  # open_by_key turns every 403 (rate limits too) into this
    if isinstance(exc, APIError):
        return _api_error(exc, spreadsheet_id)
    if isinstance(exc, requests.RequestException | google.auth.exceptions.TransportError):
        return RecordsUnavailable(f"Sheets unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, google.auth.exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return RecordsUnavailable(f"Google token refresh failed (transient): {exc}")
        return RecordsMisconfigured(
            f"Google rejected the Sheets credentials: {exc}. Check the service account key."
        )
    return None


def _api_error(exc: APIError, spreadsheet_id: str) -> RecordsUnavailable | RecordsMisconfigured:
    code = exc.code if exc.code > 0 else exc.response.status_code
    errors = exc.error.get("errors") or [{}]
    reason = str(errors[0].get("reason", ""))
    message = str(exc.error.get("message", ""))
    retry_after = _retry_after(exc.response)
    if code in (408, 429) or code >= 500:
        if code == 429 and retry_after is None:
            retry_after = QUOTA_WINDOW_S
        return RecordsUnavailable(f"Sheets answered {code}: {message}", retry_after_s=retry_after)
    if code == 403 and reason in _RATE_REASONS:
        return RecordsUnavailable(
            f"Sheets quota: {message}", retry_after_s=retry_after or QUOTA_WINDOW_S
        )
    if code == 403:
        return RecordsMisconfigured(
            f"no access to spreadsheet {spreadsheet_id} (403: {message}): share the spreadsheet "
            "with the service account's e-mail address as Editor"
        )
    if code == 404:
        return _not_found(spreadsheet_id)
    if code == 401:
        return RecordsMisconfigured(
            f"Sheets rejected the credentials (401: {message}): check the service account key"
        )
    return RecordsMisconfigured(f"Sheets rejected the request ({code}: {message})")


def _not_found(spreadsheet_id: str) -> RecordsMisconfigured:
    return RecordsMisconfigured(
        f"spreadsheet {spreadsheet_id} not found: check SHEETS_SPREADSHEET_ID, and that the "
        "spreadsheet is shared with the service account"
    )


def _retry_after(response: requests.Response | None) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After") if response is not None else None)


def create_spreadsheet(
    client: gspread.Client,
    title: str,
    *,
    tab_prefix: str = "Audit",
    folder_id: str | None = None,
    share_with: Sequence[str] = (),
    now: datetime | None = None,
) -> str:
    """Create the audit spreadsheet with this month's tab and header; return its id.

    For the operator's "prepare the spreadsheet" command. A spreadsheet a service
    account creates lives in its own Drive: give ``folder_id`` (a shared-drive
    folder) or ``share_with`` (people's addresses, made editors, no e-mail sent) so
    anyone can see it. The default first sheet is removed.
    """
    try:
        spreadsheet = client.create(title, folder_id=folder_id)
    except Exception as exc:
        translated = translate_error(exc, "(new)")
        if translated is None:
            raise
        raise translated from exc
    log = SheetsAuditLog(client, spreadsheet.id, tab_prefix=tab_prefix)
    tab = log.ensure_tab(now)
    try:
        for worksheet in spreadsheet.worksheets():
            if worksheet.title != tab:
                spreadsheet.del_worksheet(worksheet)
        for address in share_with:
            spreadsheet.share(address, perm_type="user", role="writer", notify=False)
    except Exception as exc:
        translated = translate_error(exc, spreadsheet.id)
        if translated is None:
            raise
        raise translated from exc
    return spreadsheet.id


def check_access(client: gspread.Client, spreadsheet_id: str, *, tab_prefix: str = "Audit") -> None:
    """Raise :class:`RecordsMisconfigured` (what to fix) unless the sheet can be written.

    Proves write access the only harmless way: it creates this month's tab (with
    its header) if it is missing, which the next append would do anyway.
    """
    SheetsAuditLog(client, spreadsheet_id, tab_prefix=tab_prefix).ensure_tab()
