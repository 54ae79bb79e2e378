"""The IMAP mail source against a real Dovecot, over real TLS (``tests/support/dovecot.py``).

Messages go in with IMAP APPEND, as a mail server's delivery would leave them; what the
source does to them is read back with a separate IMAP client. Skipped only when the
``dovecot`` binary is not installed (``dovecot-imapd``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Generator
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest

from services.mail import EmailOutcome, MailSource, MailSourceError, OutcomeMarking, RawEmail
from services.mail.imap import ImapSource
from tests.support.dovecot import DovecotServer
from tests.support.net import free_ports

QUEUED = "$ClaimsQueued"
OUTCOMES = {"$ClaimsProcessed", "$ClaimsNeedsReview", "$ClaimsFailed"}
SENDER = "member.private@example.com"
ZONE = timezone(timedelta(hours=-7), "test zone")  # INTERNALDATE in a non-UTC zone


class DictCursors:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_cursor(self, source: str) -> str | None:
        return self.values.get(source)

    def set_cursor(self, source: str, cursor: str) -> None:
        self.values[source] = cursor


def _email(n: int, body: str = "Policy No: POL-12345") -> bytes:
    return (
        f"From: {SENDER}\r\nTo: claims@example.com\r\nSubject: Claim secret-subject-{n}\r\n"
        f"Message-ID: <m{n}@example.com>\r\n\r\n{body} #{n}\r\n"
    ).encode()


def _source(
    server: DovecotServer, cursors: DictCursors | None = None, **kwargs: object
) -> ImapSource:
    options: dict[str, object] = {
        "username": server.username,
        "password": server.password,
        "ssl_context": server.ssl_context(),
        "cursors": cursors if cursors is not None else DictCursors(),
        "max_email_bytes": 1_000_000,
        "timeout_s": 10.0,
    }
    options.update(kwargs)
    return ImapSource(server.host, server.port, **options)  # type: ignore[arg-type]


def _error(source: ImapSource) -> MailSourceError:
    with pytest.raises(MailSourceError) as caught:
        list(source.fetch())
    return caught.value


# -- reading ------------------------------------------------------------------------------


def test_fetch_yields_every_message_oldest_first_with_its_bytes_and_date(
    dovecot: DovecotServer,
) -> None:
    base = datetime(2024, 3, 10, 8, 30, 0, tzinfo=UTC)
    # delivered in another order than UIDs go: UID order is what "oldest" means
    dates = [base, base - timedelta(days=3), base + timedelta(hours=5, minutes=7)]
    for n, when in enumerate(dates):
        dovecot.append(_email(n), when=when.astimezone(ZONE))
    cursors = DictCursors()
    source = _source(dovecot, cursors)
    assert isinstance(source, MailSource)
    assert isinstance(source, OutcomeMarking)

    got = list(source.fetch())

    uidvalidity = dovecot.uidvalidity()
    assert [raw.source_id for raw in got] == [f"{uidvalidity}:{uid}" for uid in (1, 2, 3)]
    assert [raw.data for raw in got] == [_email(n) for n in range(3)]
    assert [raw.delivered_at for raw in got] == dates
    assert all(raw.delivered_at and raw.delivered_at.tzinfo is not None for raw in got)
    assert all(raw.declared_size is None for raw in got)
    assert cursors.values == {"imap:INBOX": str(uidvalidity)}
    # read with BODY.PEEK[]: nothing marked, not even \Seen
    assert all("\\Seen" not in flags and QUEUED not in flags for flags in dovecot.flags().values())


def test_empty_folder_yields_nothing(dovecot: DovecotServer) -> None:
    assert list(_source(dovecot).fetch()) == []


def test_starttls_on_the_plain_port(dovecot: DovecotServer) -> None:
    dovecot.append(_email(1))
    source = _source(dovecot, security="starttls")
    source.port = dovecot.starttls_port
    assert [raw.data for raw in source.fetch()] == [_email(1)]


def test_another_folder_named_in_any_language(dovecot: DovecotServer) -> None:
    # IMAP names folders in modified UTF-7 (RFC 3501 5.1.3); the source takes the real name
    dovecot.create_folder("R&AOk-clamations &- Co")
    dovecot.append(_email(1), folder="R&AOk-clamations &- Co")
    dovecot.append(_email(2))  # INBOX: not this source's
    cursors = DictCursors()
    source = _source(dovecot, cursors, folder="Réclamations & Co")
    got = list(source.fetch())
    assert [raw.data for raw in got] == [_email(1)]
    assert list(cursors.values) == ["imap:Réclamations & Co"]
    source.mark_done(got[0].source_id)
    assert QUEUED in dovecot.flags("R&AOk-clamations &- Co")[1]


def test_an_abandoned_fetch_leaves_the_next_one_working(dovecot: DovecotServer) -> None:
    for n in range(3):
        dovecot.append(_email(n))
    source = _source(dovecot)
    first = cast(Generator[RawEmail, None, None], source.fetch())  # fetch is a generator
    next(first)
    second = list(source.fetch())  # the unfinished one is taken over
    first.close()  # and closing it late does not break anything
    assert [raw.data for raw in second] == [_email(n) for n in range(3)]
    for raw in source.fetch():
        source.mark_done(raw.source_id)
        break  # the caller stops early: the connection is closed all the same
    assert [raw.data for raw in source.fetch()] == [_email(1), _email(2)]


def test_oversized_message_is_not_downloaded(dovecot: DovecotServer) -> None:
    big = _email(1, body="x" * 5000)
    dovecot.append(big)
    dovecot.append(_email(2))
    source = _source(dovecot, max_email_bytes=2000)

    first, second = source.fetch()

    assert first.data == b""
    assert first.declared_size == len(big)
    assert first.delivered_at is not None
    assert second == RawEmail(second.source_id, _email(2), second.delivered_at)
    assert second.declared_size is None
    # the oversized one is still marked done like any other once intake recorded it
    source.mark_done(first.source_id)
    assert [raw.data for raw in source.fetch()] == [_email(2)]


# -- done ---------------------------------------------------------------------------------


def test_mark_done_between_yields_and_only_undone_messages_come_again(
    dovecot: DovecotServer,
) -> None:
    for n in range(3):
        dovecot.append(_email(n))
    source = _source(dovecot)

    for raw in source.fetch():  # the caller marks each one as it goes, on fetch's connection
        if raw.data != _email(1):  # the middle one "crashed" part-way
            source.mark_done(raw.source_id)

    flags = dovecot.flags()
    assert [QUEUED in flags[uid] for uid in (1, 2, 3)] == [True, False, True]
    again = list(source.fetch())
    assert [raw.data for raw in again] == [_email(1)]
    assert [raw.data for raw in source.fetch()] == [_email(1)]  # still there until done

    source.mark_done(again[0].source_id)  # outside a fetch: its own connection
    source.mark_done(again[0].source_id)  # idempotent
    assert list(source.fetch()) == []
    assert all("\\Seen" not in f for f in dovecot.flags().values())


def test_mark_done_of_an_unknown_message_raises_key_error(dovecot: DovecotServer) -> None:
    dovecot.append(_email(1))
    source = _source(dovecot)
    uidvalidity = dovecot.uidvalidity()
    with pytest.raises(KeyError):
        source.mark_done(f"{uidvalidity}:99")
    with pytest.raises(KeyError):
        source.mark_done("not-an-imap-id")
    with pytest.raises(KeyError):
        source.mark_done(f"{uidvalidity + 1}:1")  # another UIDVALIDITY
    assert QUEUED not in dovecot.flags()[1]


def test_deleted_messages_are_not_listed(dovecot: DovecotServer) -> None:
    dovecot.append(_email(1), flags="\\Deleted")
    dovecot.append(_email(2))
    assert [raw.data for raw in _source(dovecot).fetch()] == [_email(2)]


# -- outcome ------------------------------------------------------------------------------


def test_mark_outcome_sets_one_keyword_and_clears_the_others(dovecot: DovecotServer) -> None:
    dovecot.append(_email(1), flags="\\Flagged $Personal")
    source = _source(dovecot)
    (raw,) = source.fetch()

    def outcome_flags() -> set[str]:
        return dovecot.flags()[1] & OUTCOMES

    source.mark_outcome(raw.source_id, EmailOutcome.FAILED)
    assert outcome_flags() == {"$ClaimsFailed"}
    source.mark_outcome(raw.source_id, EmailOutcome.NEEDS_REVIEW)
    assert outcome_flags() == {"$ClaimsNeedsReview"}
    source.mark_outcome(raw.source_id, EmailOutcome.PROCESSED)
    source.mark_outcome(raw.source_id, EmailOutcome.PROCESSED)  # idempotent
    assert outcome_flags() == {"$ClaimsProcessed"}
    # the outcome is not "done", and nobody else's flags were touched
    assert {"\\Flagged", "$Personal"} <= dovecot.flags()[1]
    assert QUEUED not in dovecot.flags()[1]
    # an unknown message is ignored (the outcome is only a view)
    source.mark_outcome(f"{dovecot.uidvalidity()}:42", EmailOutcome.FAILED)


def test_mark_outcome_during_a_fetch_uses_its_connection(dovecot: DovecotServer) -> None:
    dovecot.append(_email(1))
    dovecot.append(_email(2))
    source = _source(dovecot, keyword_prefix="Ocr")
    for raw in source.fetch():
        source.mark_outcome(raw.source_id, EmailOutcome.PROCESSED)
        source.mark_done(raw.source_id)
    assert all(f >= {"$OcrProcessed", "$OcrQueued"} for f in dovecot.flags().values())


# -- UIDVALIDITY --------------------------------------------------------------------------


def test_uidvalidity_change_lists_only_messages_not_done(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):
        dovecot.append(_email(n))
    cursors = DictCursors()
    source = _source(dovecot, cursors)
    old = list(source.fetch())
    source.mark_done(old[0].source_id)
    source.mark_outcome(old[0].source_id, EmailOutcome.PROCESSED)
    old_validity = dovecot.uidvalidity()

    dovecot.reset_uidvalidity()  # stopped, index and uidlist deleted, restarted
    new_validity = dovecot.uidvalidity()
    assert new_validity != old_validity

    with caplog.at_level(logging.WARNING, logger="services.mail.imap"):
        again = list(source.fetch())

    # the done one kept its keyword through the rebuild; the others come again, new ids
    assert [raw.data for raw in again] == [_email(1), _email(2)]
    assert all(raw.source_id.startswith(f"{new_validity}:") for raw in again)
    assert cursors.values == {"imap:INBOX": str(new_validity)}
    (warning,) = [r for r in caplog.records if "UIDVALIDITY" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert warning.old_uidvalidity == str(old_validity)  # type: ignore[attr-defined]
    assert warning.new_uidvalidity == new_validity  # type: ignore[attr-defined]

    # ids from before the change: the outcome is ignored, done cannot find the message
    before = dovecot.flags()
    source.mark_outcome(old[1].source_id, EmailOutcome.FAILED)
    assert dovecot.flags() == before
    with pytest.raises(KeyError):
        source.mark_done(old[1].source_id)
    # the new ids work
    source.mark_done(again[0].source_id)
    assert [raw.data for raw in source.fetch()] == [_email(2)]


# -- connection trouble -------------------------------------------------------------------


def test_a_dropped_connection_is_opened_again(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(4):
        dovecot.append(_email(n))
    source = _source(dovecot)
    got = []
    with caplog.at_level(logging.WARNING, logger="services.mail.imap"):
        for raw in source.fetch():
            got.append(raw.data)
            if len(got) in (1, 3):
                # the server drops the session: mark_done (1) or the next read (3) reconnects
                dovecot.doveadm("kick", dovecot.username)
            if len(got) != 3:
                source.mark_done(raw.source_id)
    assert got == [_email(n) for n in range(4)]
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 2
    assert [raw.data for raw in source.fetch()] == [_email(2)]


def test_wrong_password_is_auth_revoked(dovecot: DovecotServer) -> None:
    error = _error(_source(dovecot, password="not-the-password"))
    assert error.status == "auth_revoked"
    assert "IMAP_USER/IMAP_PASSWORD" in str(error)
    assert "not-the-password" not in str(error)


def test_server_down_is_unavailable(dovecot: DovecotServer) -> None:
    source = _source(dovecot)
    dovecot.stop(graceful=False)
    error = _error(source)
    assert error.status == "unavailable"
    assert "ConnectionRefusedError" in str(error)
    with pytest.raises(MailSourceError) as caught:
        source.mark_done("1:1")
    assert caught.value.status == "unavailable"


def test_nothing_listening_is_unavailable(dovecot: DovecotServer) -> None:
    source = _source(dovecot)
    (source.port,) = free_ports(1)
    assert _error(source).status == "unavailable"


def test_untrusted_certificate_is_unavailable(dovecot: DovecotServer) -> None:
    # the system's CAs do not know the test's self-signed certificate
    error = _error(_source(dovecot, ssl_context=ssl.create_default_context()))
    assert error.status == "unavailable"
    assert "certificate is not trusted" in str(error)
    assert "SSLCertVerificationError" in str(error)
    # the same over STARTTLS
    source = _source(dovecot, security="starttls", ssl_context=None)
    source.port = dovecot.starttls_port
    error = _error(source)
    assert error.status == "unavailable"
    assert "certificate is not trusted" in str(error)


def test_tls_to_the_plain_port_is_unavailable(dovecot: DovecotServer) -> None:
    source = _source(dovecot)
    source.port = dovecot.starttls_port  # implicit TLS against a plain IMAP greeting
    assert _error(source).status == "unavailable"


def test_missing_folder_is_misconfigured(dovecot: DovecotServer) -> None:
    error = _error(_source(dovecot, folder="No Such Folder"))
    assert error.status == "misconfigured"
    assert "No Such Folder" in str(error)


def test_a_folder_that_takes_no_new_keywords_is_misconfigured() -> None:
    # No Dovecot setting takes \\* out of PERMANENTFLAGS (its Maildir keeps keywords past
    # the 26th in the index), so the check is shown the server's answer directly.
    source = ImapSource(
        "imap.invalid", username="u", password="p", cursors=DictCursors(), max_email_bytes=1
    )
    with pytest.raises(MailSourceError) as caught:
        source._check_keywords_allowed([b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"])
    assert caught.value.status == "misconfigured"
    assert "$ClaimsQueued" in str(caught.value)
    # allowed: new keywords may be made, or ours exist already, or no PERMANENTFLAGS
    source._check_keywords_allowed([b"(\\Seen \\*)"])
    source._check_keywords_allowed(
        [b"(\\Seen $ClaimsQueued $ClaimsProcessed $ClaimsNeedsReview $ClaimsFailed)"]
    )
    source._check_keywords_allowed([None])


# -- privacy ------------------------------------------------------------------------------


def test_logs_carry_no_addresses_subjects_or_bodies(
    dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    dovecot.append(_email(1))
    dovecot.append(_email(2, body="y" * 4000))
    source = _source(dovecot, max_email_bytes=1000)
    source.mark_outcome(f"{dovecot.uidvalidity()}:1", EmailOutcome.FAILED)  # keeps the cursor
    dovecot.reset_uidvalidity()
    with caplog.at_level(logging.DEBUG, logger="services.mail.imap"):
        for raw in source.fetch():
            dovecot.doveadm("kick", dovecot.username)  # a reconnect on the next command
            source.mark_outcome(raw.source_id, EmailOutcome.NEEDS_REVIEW)
            source.mark_done(raw.source_id)
        source.mark_outcome(raw.source_id, EmailOutcome.PROCESSED)
        source.mark_outcome("1:1", EmailOutcome.PROCESSED)
        with pytest.raises(KeyError):
            source.mark_done("1:1")
    assert {"UIDVALIDITY", "dropped", "size limit"} <= {
        word
        for r in caplog.records
        for word in ("UIDVALIDITY", "dropped", "size limit")
        if word in r.getMessage()
    }
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records
    for secret in (SENDER, "secret-subject", "POL-12345", dovecot.password):
        assert secret not in text
