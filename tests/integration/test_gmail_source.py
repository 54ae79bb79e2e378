"""GmailSource with the real googleapiclient against the Google stand-in over HTTP."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from services.demo.ncb_standin import StandinServer
from services.google.auth import GMAIL_SCOPES
from services.mail.gmail import DEFAULT_QUERY, GmailSource, default_query
from services.mail.source import (
    EmailOutcome,
    MailSource,
    MailSourceError,
    OutcomeMarking,
    RawEmail,
)
from tests.support.google_standin import (
    DictCursors,
    claim_email,
    gmail_service,
    gmail_store,
    oauth_store,
    standin_state,
)

QUEUED = "Claims/Queued"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

MakeSource = Callable[..., GmailSource]


@pytest.fixture
def cursors() -> DictCursors:
    return DictCursors()


@pytest.fixture
def make_source(google_standin: StandinServer, cursors: DictCursors) -> MakeSource:
    def make(**kwargs: Any) -> GmailSource:
        credentials = kwargs.pop("credentials", None)
        kwargs.setdefault("max_email_bytes", 1_000_000)
        kwargs.setdefault("num_retries", 2)
        return GmailSource(gmail_service(google_standin, credentials), cursors=cursors, **kwargs)

    return make


def drain(source: GmailSource, *, leave: Iterable[str] = ()) -> list[RawEmail]:
    """A poller: takes every email and marks it done, except the ids in ``leave``."""
    seen = []
    for email in source.fetch():
        seen.append(email)
        if email.source_id not in set(leave):
            source.mark_done(email.source_id)
    return seen


def ids(emails: list[RawEmail]) -> list[str]:
    return [e.source_id for e in emails]


def queries(server: StandinServer, path_end: str, **query: str) -> list[dict[str, Any]]:
    return [
        r
        for r in gmail_store(server).requests
        if r["path"].endswith(path_end) and all(r["query"].get(k) == v for k, v in query.items())
    ]


def test_default_query_and_protocols(make_source: MakeSource) -> None:
    assert DEFAULT_QUERY == "has:attachment in:inbox -label:claims-queued"
    assert default_query("Intake") == "has:attachment in:inbox -label:intake-queued"
    source = make_source(query="label:Claims/Inbox")
    assert source.query == "label:Claims/Inbox -label:claims-queued"  # Queued always excluded
    assert isinstance(source, MailSource)
    assert isinstance(source, OutcomeMarking)


def test_full_sync_then_incremental(
    google_standin: StandinServer,
    make_source: MakeSource,
    cursors: DictCursors,
) -> None:
    store = gmail_store(google_standin)
    raws = [claim_email(n) for n in range(3)]
    claims = [
        store.add_message(raw, internal_date=T0 + timedelta(minutes=n))
        for n, raw in enumerate(raws)
    ]
    store.add_message(claim_email(10, attachment=False), internal_date=T0)
    store.add_message(claim_email(11), labels=(), internal_date=T0)  # archived, not in inbox
    store.add_message(claim_email(12), labels=("INBOX", QUEUED), internal_date=T0)
    source = make_source()

    first = drain(source)

    assert ids(first) == claims  # oldest first, only the query's matches
    assert [e.data for e in first] == raws
    assert first[0].delivered_at == T0 and first[0].declared_size is None
    assert all(QUEUED in store.labels_of(i) for i in claims)
    history_after_full_sync = store.history_id
    # The cursor is the history id read before the search, not after the labelling.
    assert int(cursors.cursors["gmail"]) < history_after_full_sync

    new = [store.add_message(claim_email(n)) for n in (20, 21)]
    store.add_message(claim_email(22), labels=("SENT",))  # not in the inbox: ignored
    plain = store.add_message(claim_email(23, attachment=False))
    store.clear_requests()

    second = drain(source)

    # has:attachment is judged by the full sync only (documented): `plain` comes too.
    assert ids(second) == [*new, plain]
    assert queries(google_standin, "/history")
    assert not queries(google_standin, "/messages", q=source.query)
    assert int(cursors.cursors["gmail"]) >= history_after_full_sync
    assert drain(source) == []
    assert store.label_names().count(QUEUED) == 1


def test_cursor_advances_only_when_every_email_was_marked_done(
    google_standin: StandinServer,
    make_source: MakeSource,
    cursors: DictCursors,
) -> None:
    store = gmail_store(google_standin)
    a, b = (store.add_message(claim_email(n), internal_date=T0 + timedelta(n)) for n in (1, 2))
    source = make_source()

    assert ids(drain(source, leave=[b])) == [a, b]
    assert "gmail" not in cursors.cursors  # b is not done: no cursor yet
    assert ids(drain(source)) == [b]  # full sync again; a is Queued
    start = cursors.cursors["gmail"]

    c, d = (store.add_message(claim_email(n)) for n in (3, 4))
    assert ids(drain(source, leave=[c])) == [c, d]
    assert cursors.cursors["gmail"] == start  # held: c was not marked
    assert ids(drain(source)) == [c]  # d is Queued and skipped
    assert int(cursors.cursors["gmail"]) > int(start)


def test_a_caller_that_stops_early_does_not_advance_the_cursor(
    google_standin: StandinServer,
    make_source: MakeSource,
    cursors: DictCursors,
) -> None:
    store = gmail_store(google_standin)
    for n in range(2):
        store.add_message(claim_email(n))
    source = make_source()
    for email in source.fetch():
        source.mark_done(email.source_id)
        break
    assert cursors.writes == 0


def test_stale_history_id_falls_back_to_a_full_sync(
    google_standin: StandinServer,
    make_source: MakeSource,
    cursors: DictCursors,
) -> None:
    store = gmail_store(google_standin)
    done = [store.add_message(claim_email(n)) for n in range(2)]
    source = make_source()
    assert ids(drain(source)) == done
    late = store.add_message(claim_email(5))
    store.expire_history()

    assert ids(drain(source)) == [late]  # the Queued ones are not handed over again
    assert cursors.cursors["gmail"] == str(store.history_id - 1)  # before late was labelled
    assert drain(source) == []  # and history works again from the new cursor


def test_message_deleted_between_listing_and_reading_is_skipped(
    google_standin: StandinServer,
    make_source: MakeSource,
    cursors: DictCursors,
) -> None:
    store = gmail_store(google_standin)
    a, b, c, d = (
        store.add_message(claim_email(n), internal_date=T0 + timedelta(n)) for n in range(4)
    )
    store.delete_on_get(b)  # gone before its metadata is read
    store.delete_on_get(c, fmt="raw")  # gone between metadata and download
    source = make_source()

    assert ids(drain(source)) == [a, d]
    assert "gmail" in cursors.cursors  # a vanished email does not hold the cursor


def test_oversized_email_is_handed_over_without_downloading(
    google_standin: StandinServer,
    make_source: MakeSource,
) -> None:
    store = gmail_store(google_standin)
    small = store.add_message(claim_email(1), internal_date=T0)
    big = store.add_message(
        claim_email(2, attachment_bytes=20_000), internal_date=T0 + timedelta(1)
    )
    source = make_source(max_email_bytes=5_000)

    emails = {e.source_id: e for e in drain(source)}

    assert emails[small].data and emails[small].declared_size is None
    assert emails[big].data == b""
    assert emails[big].declared_size is not None and emails[big].declared_size > 20_000
    assert emails[big].delivered_at == T0 + timedelta(1)
    assert QUEUED in store.labels_of(big)
    raw_gets = queries(google_standin, f"/messages/{big}", format="raw")
    assert raw_gets == []
    assert queries(google_standin, f"/messages/{small}", format="raw")


def test_rate_limit_then_success_uses_the_library_backoff(
    google_standin: StandinServer,
    make_source: MakeSource,
    backoff_waits: list[float],
) -> None:
    store = gmail_store(google_standin)
    a = store.add_message(claim_email(1))
    standin_state(google_standin).fail_next("gmail", 429, reason="rateLimitExceeded")

    assert ids(drain(make_source(num_retries=2))) == [a]
    assert len(backoff_waits) == 1 and 0 <= backoff_waits[0] <= 2
    assert len(queries(google_standin, "/profile")) == 2


def test_backend_errors_then_success(
    google_standin: StandinServer,
    make_source: MakeSource,
    backoff_waits: list[float],
) -> None:
    store = gmail_store(google_standin)
    a, b = (store.add_message(claim_email(n), internal_date=T0 + timedelta(n)) for n in (1, 2))
    standin_state(google_standin).fail_next("gmail", 500, count=2, reason="backendError")
    # b's metadata fails inside the batch, then once more when read on its own.
    store.fail_get(b, 429, reason="rateLimitExceeded", count=2)

    assert ids(drain(make_source(num_retries=3))) == [a, b]
    assert len(backoff_waits) == 3  # two for the profile, one for b's own read


def test_errors_become_mail_source_errors(
    google_standin: StandinServer,
    make_source: MakeSource,
    backoff_waits: list[float],
) -> None:
    state = standin_state(google_standin)
    source = make_source(num_retries=1)

    state.fail_next("gmail", 403, reason="insufficientPermissions")
    with pytest.raises(MailSourceError) as denied:
        list(source.fetch())
    assert denied.value.status == "misconfigured"

    state.fail_for("gmail", 60, 503)
    with pytest.raises(MailSourceError) as down:
        list(source.fetch())
    assert down.value.status == "unavailable"
    state.clear_faults()

    google_standin.stop()
    try:
        with pytest.raises(MailSourceError) as refused:
            list(source.fetch())
        assert refused.value.status == "unavailable"
    finally:
        google_standin.start()


def test_failure_mid_iteration_keeps_what_was_marked(
    google_standin: StandinServer,
    make_source: MakeSource,
    cursors: DictCursors,
    backoff_waits: list[float],
) -> None:
    store = gmail_store(google_standin)
    a, b = (store.add_message(claim_email(n), internal_date=T0 + timedelta(n)) for n in (1, 2))
    source = make_source(num_retries=1)
    fetched = source.fetch()
    first = next(fetched)
    source.mark_done(first.source_id)
    standin_state(google_standin).fail_for("gmail", 60, 503)

    with pytest.raises(MailSourceError) as failed:
        next(fetched)

    assert failed.value.status == "unavailable"
    assert first.source_id == a and QUEUED in store.labels_of(a)
    assert QUEUED not in store.labels_of(b)
    assert cursors.writes == 0


def test_revoked_refresh_token_is_auth_revoked(
    google_standin: StandinServer,
    make_source: MakeSource,
) -> None:
    oauth = oauth_store(google_standin)
    oauth.open = False  # only tokens the stand-in issued are accepted
    refresh_token = oauth.issue_refresh_token("client-1", " ".join(GMAIL_SCOPES))
    creds = Credentials(
        token=None,
        refresh_token=refresh_token,
        client_id="client-1",
        client_secret="secret",
        token_uri=f"{google_standin.url}/token",
        scopes=list(GMAIL_SCOPES),
    )
    gmail_store(google_standin).add_message(claim_email(1))
    source = make_source(credentials=creds)
    assert len(drain(source)) == 1  # refreshed once, works

    oauth.revoke(refresh_token)
    creds.expiry = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    with pytest.raises(MailSourceError) as revoked:
        list(source.fetch())
    assert revoked.value.status == "auth_revoked"
    assert "claims-ocr google-auth" in str(revoked.value)


def test_unusable_bearer_token_is_auth_revoked(
    google_standin: StandinServer,
    make_source: MakeSource,
) -> None:
    oauth_store(google_standin).open = False
    with pytest.raises(MailSourceError) as refused:
        list(make_source().fetch())  # "fake" is not a token it issued; cannot refresh
    assert refused.value.status == "auth_revoked"


def test_labels_made_once_and_outcomes_switch(
    google_standin: StandinServer,
    make_source: MakeSource,
) -> None:
    store = gmail_store(google_standin)
    a, b = (store.add_message(claim_email(n)) for n in (1, 2))
    source = make_source()
    drain(source)
    # Another poller makes the label between our labels.list and labels.create: 409.
    store.create_label_after_next_list("Claims/Needs-Review")

    source.mark_outcome(a, EmailOutcome.NEEDS_REVIEW)
    assert store.labels_of(a) == {"INBOX", QUEUED, "Claims/Needs-Review"}
    source.mark_outcome(a, EmailOutcome.PROCESSED)
    source.mark_outcome(a, EmailOutcome.PROCESSED)
    assert store.labels_of(a) == {"INBOX", QUEUED, "Claims/Processed"}
    source.mark_outcome(b, EmailOutcome.FAILED)
    assert store.labels_of(b) == {"INBOX", QUEUED, "Claims/Failed"}
    source.mark_done(a)  # idempotent
    assert store.labels_of(a) == {"INBOX", QUEUED, "Claims/Processed"}

    names = store.label_names()
    for name in (QUEUED, "Claims/Processed", "Claims/Needs-Review", "Claims/Failed"):
        assert names.count(name) == 1
    creates = [r for r in store.requests if r["method"] == "POST" and r["path"].endswith("/labels")]
    assert len(creates) == 4  # Queued, Needs-Review (409), Processed, Failed
    # A fresh instance finds the labels instead of making them again.
    make_source().mark_outcome(b, EmailOutcome.PROCESSED)
    creates = [r for r in store.requests if r["method"] == "POST" and r["path"].endswith("/labels")]
    assert len(creates) == 4


def test_marking_a_deleted_message_is_ignored(
    google_standin: StandinServer,
    make_source: MakeSource,
) -> None:
    store = gmail_store(google_standin)
    a = store.add_message(claim_email(1))
    source = make_source()
    fetched = drain(source, leave=[a])
    store.delete(a)
    source.mark_done(fetched[0].source_id)
    source.mark_outcome(a, EmailOutcome.PROCESSED)


def test_standin_insert_send_search_and_label_conflict(google_standin: StandinServer) -> None:
    service = gmail_service(google_standin)
    store = gmail_store(google_standin)
    messages = service.users().messages()
    raw = claim_email(1)
    body = {"raw": base64.urlsafe_b64encode(raw).decode(), "labelIds": ["INBOX", "UNREAD"]}
    inserted = messages.insert(userId="me", body=body).execute()
    assert store.labels_of(inserted["id"]) == {"INBOX", "UNREAD"}
    media = MediaInMemoryUpload(claim_email(2), mimetype="message/rfc822")
    sent = messages.send(userId="me", body={}, media_body=media).execute()
    assert store.labels_of(sent["id"]) == {"SENT", "INBOX"}  # addressed to the mailbox itself
    got = messages.get(userId="me", id=inserted["id"], format="raw").execute()
    assert base64.urlsafe_b64decode(got["raw"]) == raw

    labels = service.users().labels()
    created = labels.create(userId="me", body={"name": QUEUED}).execute()
    with pytest.raises(HttpError) as conflict:
        labels.create(userId="me", body={"name": "claims/queued"}).execute()
    assert conflict.value.status_code == 409
    messages.batchModify(
        userId="me", body={"ids": [sent["id"]], "addLabelIds": [created["id"]]}
    ).execute()
    for q in ("label:Claims/Queued", "label:claims-queued", 'label:"claims/queued"'):
        found = messages.list(userId="me", q=q).execute()
        assert [m["id"] for m in found["messages"]] == [sent["id"]]
    assert messages.list(userId="me", q="-label:claims-queued in:inbox").execute()["messages"]
    with pytest.raises(HttpError) as missing:
        messages.get(userId="me", id="ffff", format="minimal").execute()
    assert missing.value.status_code == 404
