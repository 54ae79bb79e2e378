"""Sheets v4 as the audit log uses it: spreadsheets, tabs, and values in A1 ranges.

Routes: ``spreadsheets.get``/``create``/``batchUpdate`` (``addSheet``,
``updateSheetProperties``, ``deleteSheet``; other requests are accepted and ignored),
``values.get``/``batchGet``/``append``/``update``/``clear``. Spreadsheets created through
Drive (gspread's ``create``) come from :mod:`.drive`, which calls
:meth:`SheetsStore.create`.

Values are kept as strings. ``USER_ENTERED`` is interpreted the way Sheets does for
what matters here: a leading apostrophe is dropped, and a cell starting with ``=`` is
a formula (recorded in :attr:`SheetsStore.formulas`, so a test can prove none was
written). Every route first answers an injected fault; write requests above
:attr:`SheetsStore.write_quota_per_minute` in a rolling minute get Sheets' 429.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.demo.google_standin.state import GoogleStandinState, google_error

_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


@dataclass
class Tab:
    sheet_id: int
    title: str
    index: int
    row_count: int = 1000
    column_count: int = 26
    frozen_rows: int = 0
    rows: list[list[str]] = field(default_factory=list)

    def properties(self) -> dict[str, Any]:
        grid: dict[str, Any] = {"rowCount": self.row_count, "columnCount": self.column_count}
        if self.frozen_rows:
            grid["frozenRowCount"] = self.frozen_rows
        return {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": self.index,
            "sheetType": "GRID",
            "gridProperties": grid,
        }


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    tabs: list[Tab] = field(default_factory=list)

    def tab(self, title: str) -> Tab | None:
        return next((t for t in self.tabs if t.title == title), None)

    def metadata(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {"title": self.title, "locale": "en_US", "timeZone": "Etc/GMT"},
            "sheets": [{"properties": t.properties()} for t in self.tabs],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit",
        }


class SheetsError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


class SheetsStore:
    """The stand-in's spreadsheets (thread-safe), with what tests look at."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.spreadsheets: dict[str, Spreadsheet] = {}
        #: Write requests allowed per rolling minute (``None``: no limit).
        self.write_quota_per_minute: int | None = None
        #: The clock the quota window uses (a test may share its fake clock).
        self.clock: Callable[[], float] = time.monotonic
        #: When each accepted write request came (by :attr:`clock`).
        self.write_times: list[float] = []
        #: Every request: (method, path, query params).
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: (spreadsheet id, tab, row, column) of every cell written as a formula.
        self.formulas: list[tuple[str, str, int, int]] = []
        #: ``valueInputOption`` of every values write, in order.
        self.input_options: list[str] = []
        self._window: deque[float] = deque()

    # -- for tests -------------------------------------------------------------------

    def create(
        self, title: str, spreadsheet_id: str | None = None, tabs: tuple[str, ...] = ("Sheet1",)
    ) -> str:
        with self.lock:
            sid = spreadsheet_id or secrets.token_urlsafe(33)[:44]
            sheet = Spreadsheet(sid, title)
            for n, tab in enumerate(tabs):
                sheet.tabs.append(
                    Tab(sheet_id=0 if n == 0 else _new_sheet_id(), title=tab, index=n)
                )
            self.spreadsheets[sid] = sheet
            return sid

    def rows(self, spreadsheet_id: str, tab: str) -> list[list[str]]:
        """A tab's rows as stored (trailing empty cells trimmed)."""
        with self.lock:
            found = self.spreadsheets[spreadsheet_id].tab(tab)
            if found is None:
                raise KeyError(tab)
            return [list(r) for r in found.rows]

    def tabs(self, spreadsheet_id: str) -> list[str]:
        with self.lock:
            return [t.title for t in self.spreadsheets[spreadsheet_id].tabs]

    def frozen_rows(self, spreadsheet_id: str, tab: str) -> int:
        with self.lock:
            found = self.spreadsheets[spreadsheet_id].tab(tab)
            return found.frozen_rows if found else 0

    def writes(self) -> int:
        with self.lock:
            return len(self.write_times)

    # -- quota -----------------------------------------------------------------------

    def admit_write(self) -> bool:
        """Count a write request; ``False`` when it is over the per-minute quota."""
        with self.lock:
            now = self.clock()
            while self._window and now - self._window[0] >= 60.0:
                self._window.popleft()
            quota = self.write_quota_per_minute
            if quota is not None and len(self._window) >= quota:
                return False
            self._window.append(now)
            self.write_times.append(now)
            return True

    # -- operations ------------------------------------------------------------------

    def get(self, sid: str) -> Spreadsheet:
        sheet = self.spreadsheets.get(sid)
        if sheet is None:
            raise SheetsError(404, "Requested entity was not found.", "notFound")
        return sheet

    def batch_update(self, sid: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            sheet = self.get(sid)
            requests = body.get("requests") or []
            if not requests:
                raise SheetsError(400, "Must specify at least one request.")
            replies: list[dict[str, Any]] = []
            for n, request in enumerate(requests):
                replies.append(self._apply(sheet, n, request))
            return {"spreadsheetId": sid, "replies": replies}

    def _apply(self, sheet: Spreadsheet, n: int, request: dict[str, Any]) -> dict[str, Any]:
        if "addSheet" in request:
            props = request["addSheet"].get("properties", {})
            title = props.get("title") or f"Sheet{len(sheet.tabs) + 1}"
            if sheet.tab(title) is not None:
                raise SheetsError(
                    400,
                    f'Invalid requests[{n}].addSheet: A sheet with the name "{title}" '
                    "already exists. Please enter another name.",
                )
            grid = props.get("gridProperties", {})
            index = props.get("index", len(sheet.tabs))
            tab = Tab(
                sheet_id=props.get("sheetId", _new_sheet_id()),
                title=title,
                index=index,
                row_count=grid.get("rowCount", 1000),
                column_count=grid.get("columnCount", 26),
                frozen_rows=grid.get("frozenRowCount", 0),
            )
            sheet.tabs.insert(index, tab)
            _reindex(sheet)
            return {"addSheet": {"properties": tab.properties()}}
        if "updateSheetProperties" in request:
            props = request["updateSheetProperties"].get("properties", {})
            tab = _by_id(sheet, props.get("sheetId", 0), n)
            grid = props.get("gridProperties", {})
            if "title" in props:
                tab.title = props["title"]
            if "frozenRowCount" in grid:
                tab.frozen_rows = grid["frozenRowCount"]
            return {}
        if "deleteSheet" in request:
            tab = _by_id(sheet, request["deleteSheet"].get("sheetId"), n)
            if len(sheet.tabs) == 1:
                raise SheetsError(
                    400,
                    f"Invalid requests[{n}].deleteSheet: You can't remove all the sheets "
                    "in a document.",
                )
            sheet.tabs.remove(tab)
            _reindex(sheet)
            return {}
        return {}  # accepted, ignored

    def values_get(self, sid: str, a1: str, major: str = "ROWS") -> dict[str, Any]:
        with self.lock:
            sheet = self.get(sid)
            tab, (r0, c0, r1, c1) = _resolve(sheet, a1)
            block = [
                row[c0 : c1 if c1 is not None else None]
                for row in tab.rows[r0 : r1 if r1 is not None else None]
            ]
            block = _trim(block)
            if major == "COLUMNS" and block:
                width = max(len(r) for r in block)
                block = _trim([[r[i] if i < len(r) else "" for r in block] for i in range(width)])
            reply: dict[str, Any] = {
                "range": _label(tab, r0, c0, r1, c1),
                "majorDimension": major,
            }
            if block:
                reply["values"] = block
            return reply

    def values_write(
        self,
        sid: str,
        a1: str,
        values: list[list[Any]],
        option: str,
        *,
        append: bool,
    ) -> dict[str, Any]:
        if option not in ("RAW", "USER_ENTERED"):
            raise SheetsError(
                400,
                f"Invalid value at 'value_input_option' ({option or 'unset'}): "
                "use RAW or USER_ENTERED",
            )
        with self.lock:
            sheet = self.get(sid)
            tab, (r0, c0, _, _) = _resolve(sheet, a1)
            if append:
                r0 = len(_trim(tab.rows))
            self.input_options.append(option)
            for i, row in enumerate(values):
                cells = [self._cell(sid, tab, r0 + i, c0 + j, v, option) for j, v in enumerate(row)]
                while len(tab.rows) <= r0 + i:
                    tab.rows.append([])
                target = tab.rows[r0 + i]
                while len(target) < c0 + len(cells):
                    target.append("")
                target[c0 : c0 + len(cells)] = cells
                tab.rows[r0 + i] = _trim_row(target)
            width = max((len(r) for r in values), default=0)
            tab.row_count = max(tab.row_count, r0 + len(values))
            tab.column_count = max(tab.column_count, c0 + width)
            updated = {
                "spreadsheetId": sid,
                "updatedRange": _label(tab, r0, c0, r0 + len(values), c0 + width),
                "updatedRows": len(values),
                "updatedColumns": width,
                "updatedCells": sum(len(r) for r in values),
            }
            if append:
                return {
                    "spreadsheetId": sid,
                    "tableRange": _label(tab, 0, 0, r0, None),
                    "updates": updated,
                }
            return updated

    def values_clear(self, sid: str, a1: str) -> dict[str, Any]:
        with self.lock:
            sheet = self.get(sid)
            tab, (r0, c0, r1, c1) = _resolve(sheet, a1)
            for row in tab.rows[r0 : r1 if r1 is not None else None]:
                end = len(row) if c1 is None else min(c1, len(row))
                for c in range(c0, end):
                    row[c] = ""
            tab.rows = [_trim_row(r) for r in tab.rows]
            return {"spreadsheetId": sid, "clearedRange": _label(tab, r0, c0, r1, c1)}

    def _cell(self, sid: str, tab: Tab, row: int, col: int, value: Any, option: str) -> str:
        text = _as_text(value)
        if option == "USER_ENTERED":
            if text.startswith("'"):
                return text[1:]
            if text.startswith("="):
                self.formulas.append((sid, tab.title, row, col))
        return text


def store_of(state: GoogleStandinState) -> SheetsStore:
    """The Sheets store of ``state`` (created on first use; Drive shares it)."""
    found = state.stores.get("sheets")
    if found is None:
        found = state.stores.setdefault("sheets", SheetsStore())
    return found


def router(state: GoogleStandinState) -> APIRouter:
    sheets = store_of(state)
    api = APIRouter()

    def guard(request: Request, write: bool) -> Response | None:
        sheets.requests.append((request.method, request.url.path, dict(request.query_params)))
        fault = state.fault_response("sheets")
        if fault is not None:
            return fault
        if write and not sheets.admit_write():
            return google_error(
                429,
                "rateLimitExceeded",
                message="Quota exceeded for quota metric 'Write requests' and limit "
                "'Write requests per minute per user' of service 'sheets.googleapis.com'.",
            )
        return None

    def answer(call: Callable[[], dict[str, Any]]) -> Response:
        try:
            return JSONResponse(call())
        except SheetsError as exc:
            return google_error(exc.status, exc.reason or "badRequest", message=exc.message)

    @api.post("/v4/spreadsheets")
    async def create(request: Request) -> Response:
        blocked = guard(request, write=True)
        if blocked is not None:
            return blocked
        body = await _json(request)
        title = (body.get("properties") or {}).get("title") or "Untitled spreadsheet"
        tabs = tuple(
            s.get("properties", {}).get("title") or f"Sheet{n + 1}"
            for n, s in enumerate(body.get("sheets") or [{}])
        )
        sid = sheets.create(title, tabs=tabs)
        return answer(lambda: sheets.get(sid).metadata())

    @api.get("/v4/spreadsheets/{rest:path}")
    async def get(rest: str, request: Request) -> Response:
        blocked = guard(request, write=False)
        if blocked is not None:
            return blocked
        sid, kind, a1 = _split(rest)
        params = request.query_params
        if kind == "" and a1 is None:
            return answer(lambda: sheets.get(sid).metadata())
        if kind == "values:batchGet":
            ranges = params.getlist("ranges")
            major = params.get("majorDimension", "ROWS")
            return answer(
                lambda: {
                    "spreadsheetId": sid,
                    "valueRanges": [sheets.values_get(sid, r, major) for r in ranges],
                }
            )
        if kind == "values" and a1 is not None:
            major = params.get("majorDimension", "ROWS")
            return answer(lambda: sheets.values_get(sid, a1, major))
        return google_error(404, "notFound", message=f"no such method: GET {rest}")

    @api.post("/v4/spreadsheets/{rest:path}")
    async def post(rest: str, request: Request) -> Response:
        blocked = guard(request, write=True)
        if blocked is not None:
            return blocked
        sid, kind, a1 = _split(rest)
        body = await _json(request)
        params = request.query_params
        if kind == "batchUpdate":
            return answer(lambda: sheets.batch_update(sid, body))
        if kind == "values:append" and a1 is not None:
            option = params.get("valueInputOption", "")
            values = body.get("values") or []
            return answer(lambda: sheets.values_write(sid, a1, values, option, append=True))
        if kind == "values:clear" and a1 is not None:
            return answer(lambda: sheets.values_clear(sid, a1))
        return google_error(404, "notFound", message=f"no such method: POST {rest}")

    @api.put("/v4/spreadsheets/{rest:path}")
    async def put(rest: str, request: Request) -> Response:
        blocked = guard(request, write=True)
        if blocked is not None:
            return blocked
        sid, kind, a1 = _split(rest)
        if kind != "values" or a1 is None:
            return google_error(404, "notFound", message=f"no such method: PUT {rest}")
        body = await _json(request)
        option = request.query_params.get("valueInputOption", "")
        values = body.get("values") or []
        return answer(lambda: sheets.values_write(sid, a1, values, option, append=False))

    return api


# -- helpers -------------------------------------------------------------------------


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    parsed = json.loads(raw)
    return parsed if isinstance(parsed, dict) else {}


def _split(rest: str) -> tuple[str, str, str | None]:
    """``ID``, ``ID:batchUpdate``, ``ID/values:batchGet``, ``ID/values/RANGE[:append]``."""
    sid, _, tail = rest.partition("/")
    if not tail:
        sid, colon, method = sid.partition(":")
        return sid, method if colon else "", None
    if tail.startswith("values:"):
        return sid, tail, None
    if tail.startswith("values/"):
        a1 = tail[len("values/") :]
        for method in (":append", ":clear"):
            if a1.endswith(method):
                return sid, "values" + method, a1[: -len(method)]
        return sid, "values", a1
    return sid, tail, None


def _parse_a1(a1: str) -> tuple[str | None, str]:
    """``'Tab ''x'''!A1:B`` → (``Tab 'x'``, ``A1:B``); no ``!`` → (None or tab, "")."""
    a1 = a1.strip()
    if a1.startswith("'"):
        i, name = 1, []
        while i < len(a1):
            if a1[i] == "'":
                if a1[i + 1 : i + 2] == "'":
                    name.append("'")
                    i += 2
                    continue
                break
            name.append(a1[i])
            i += 1
        rest = a1[i + 1 :]
        return "".join(name), rest[1:] if rest.startswith("!") else rest
    if "!" in a1:
        tab, _, cells = a1.rpartition("!")
        return tab, cells
    return None, a1


def _resolve(sheet: Spreadsheet, a1: str) -> tuple[Tab, tuple[int, int, int | None, int | None]]:
    title, cells = _parse_a1(a1)
    if title is None:
        # Either a bare tab name or a range on the first tab.
        tab = sheet.tab(cells)
        if tab is not None:
            return tab, (0, 0, None, None)
        tab = sheet.tabs[0] if sheet.tabs else None
    else:
        tab = sheet.tab(title)
    if tab is None:
        raise SheetsError(400, f"Unable to parse range: {a1}")
    if not cells:
        return tab, (0, 0, None, None)
    start, _, end = cells.partition(":")
    m0, m1 = _CELL.match(start), _CELL.match(end or start)
    if m0 is None or m1 is None:
        raise SheetsError(400, f"Unable to parse range: {a1}")
    r0 = int(m0.group(2)) - 1 if m0.group(2) else 0
    c0 = _col(m0.group(1)) if m0.group(1) else 0
    r1 = int(m1.group(2)) if m1.group(2) else None
    c1 = _col(m1.group(1)) + 1 if m1.group(1) else None
    return tab, (r0, c0, r1, c1)


def _col(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _letters(col: int) -> str:
    out = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        out = chr(65 + rem) + out
    return out


def _label(tab: Tab, r0: int, c0: int, r1: int | None, c1: int | None) -> str:
    name = "'" + tab.title.replace("'", "''") + "'"
    end_row = r1 if r1 is not None else tab.row_count
    end_col = (c1 if c1 is not None else tab.column_count) - 1
    return f"{name}!{_letters(c0)}{r0 + 1}:{_letters(max(end_col, c0))}{max(end_row, r0 + 1)}"


def _trim_row(row: list[str]) -> list[str]:
    end = len(row)
    while end and row[end - 1] == "":
        end -= 1
    return row[:end]


def _trim(block: list[list[str]]) -> list[list[str]]:
    rows = [_trim_row(r) for r in block]
    end = len(rows)
    while end and not any(rows[end - 1]):
        end -= 1
    return rows[:end]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def _by_id(sheet: Spreadsheet, sheet_id: Any, n: int) -> Tab:
    for tab in sheet.tabs:
        if tab.sheet_id == sheet_id:
            return tab
    raise SheetsError(400, f"Invalid requests[{n}]: No grid with id: {sheet_id}")


def _reindex(sheet: Spreadsheet) -> None:
    for i, tab in enumerate(sheet.tabs):
        tab.index = i


def _new_sheet_id() -> int:
    return secrets.randbelow(2_000_000_000) + 1
