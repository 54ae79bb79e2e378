"""Maildir and .eml-folder sources: fetch, mark_done, and refetch after a crash."""

from __future__ import annotations

import mailbox
import os
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.demo import SAMPLE_INBOX_DIR
from services.mail import MaildirSource, MailSource, parse_email


def _email(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"member{n}@example.com"
    msg["Subject"] = f"Claim {n} - Policy No: POL-{n:05d}"
    msg["Message-ID"] = f"<m{n}@example.com>"
    msg["Date"] = "Tue, 02 Jul 2024 09:30:00 +0800"
    msg.set_content("receipt attached")
    msg.add_attachment(b"%PDF-1.4\n...", "application", "pdf", filename=f"r{n}.pdf")
    return msg


@pytest.fixture
def maildir(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "Maildir"
    box = mailbox.Maildir(path, create=True)
    keys = []
    for n in range(3):
        keys.append(box.add(_email(n)))
        # deliveries a second apart, so "oldest first" has a defined answer
        file = next((path / "new").glob(f"{keys[-1]}*"))
        os.utime(file, (1_700_000_000 + n, 1_700_000_000 + n))
    return path, keys


def test_maildir_is_detected_and_fetched_oldest_first(maildir: tuple[Path, list[str]]) -> None:
    path, keys = maildir
    source = MaildirSource(path)
    assert isinstance(source, MailSource)
    assert source.name == "maildir"
    raw = list(source.fetch())
    assert [e.source_id for e in raw] == keys
    # The source hands over bytes; intake parses them.
    emails = [parse_email(r.data, source=source.name, source_id=r.source_id) for r in raw]
    assert [e.message_id for e in emails] == [
        "<m0@example.com>",
        "<m1@example.com>",
        "<m2@example.com>",
    ]
    assert all(r.delivered_at is not None for r in raw)
    assert emails[0].attachments[0].kind == "pdf"


def test_maildir_mark_done_moves_to_cur_with_seen_flag(maildir: tuple[Path, list[str]]) -> None:
    path, keys = maildir
    source = MaildirSource(path)
    source.mark_done(keys[1])
    box = mailbox.Maildir(path, create=False)  # the stdlib reads our move back
    assert box.get_message(keys[1]).get_subdir() == "cur"
    assert "S" in box.get_message(keys[1]).get_flags()
    assert box.get_message(keys[0]).get_subdir() == "new"
    assert [e.source_id for e in source.fetch()] == [keys[0], keys[2]]
    source.mark_done(keys[1])  # idempotent
    assert len(list((path / "cur").iterdir())) == 1


def test_maildir_crash_before_mark_done_refetches(maildir: tuple[Path, list[str]]) -> None:
    path, keys = maildir
    first = MaildirSource(path)
    for email in first.fetch():
        if email.source_id == keys[1]:
            break  # "crash" while handling the second email: it is never marked done
        first.mark_done(email.source_id)
    again = MaildirSource(path)  # a fresh poller process
    assert [e.source_id for e in again.fetch()] == [keys[1], keys[2]]


def test_maildir_unseen_mail_in_cur_is_fetched_and_flags_kept(
    maildir: tuple[Path, list[str]],
) -> None:
    path, keys = maildir
    box = mailbox.Maildir(path, create=False)
    msg = box.get_message(keys[0])
    msg.set_subdir("cur")
    msg.set_flags("F")  # a mail client moved it to cur and flagged it, but did not read it
    box[keys[0]] = msg
    source = MaildirSource(path)
    assert keys[0] in [e.source_id for e in source.fetch()]
    source.mark_done(keys[0])
    assert box.get_message(keys[0]).get_flags() == "FS"
    assert keys[0] not in [e.source_id for e in source.fetch()]


def test_maildir_unknown_or_unsafe_ids(maildir: tuple[Path, list[str]]) -> None:
    source = MaildirSource(maildir[0])
    with pytest.raises(KeyError):
        source.mark_done("no-such-key")
    with pytest.raises(KeyError):
        source.mark_done("../new")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    shutil.copytree(SAMPLE_INBOX_DIR, path)
    return path


def test_eml_folder_fetch_and_mark_done(folder: Path) -> None:
    source = MaildirSource(folder)
    assert source.name == "folder"
    names = sorted(p.name for p in folder.glob("*.eml"))
    emails = list(source.fetch())
    assert sorted(e.source_id for e in emails) == names  # MANIFEST.json is not an email
    assert all(e.data for e in emails)
    source.mark_done(names[0])
    assert (folder / "done" / names[0]).is_file()
    assert not (folder / names[0]).exists()
    assert sorted(e.source_id for e in source.fetch()) == names[1:]
    source.mark_done(names[0])  # idempotent
    with pytest.raises(KeyError):
        source.mark_done("missing.eml")
    with pytest.raises(KeyError):
        source.mark_done("../escape.eml")


def test_eml_folder_crash_before_mark_done_refetches(folder: Path) -> None:
    source = MaildirSource(folder)
    seen = []
    for email in source.fetch():
        seen.append(email.source_id)
        if len(seen) == 3:
            break  # crash mid-way through the third email
        source.mark_done(email.source_id)
    pending = [e.source_id for e in MaildirSource(folder).fetch()]
    assert pending[0] == seen[2]
    assert not set(seen[:2]) & set(pending)


def test_eml_folder_done_never_overwrites(folder: Path) -> None:
    source = MaildirSource(folder)
    name = "01_clinic_en_subject.eml"
    original = (folder / name).read_bytes()
    source.mark_done(name)
    (folder / name).write_bytes(b"Subject: a new email, same file name\n\nhi\n")
    source.mark_done(name)
    assert (folder / "done" / name).read_bytes() == original
    assert (folder / "done" / "01_clinic_en_subject.1.eml").read_bytes().startswith(b"Subject")


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mail folder does not exist"):
        MaildirSource(tmp_path / "nope")
