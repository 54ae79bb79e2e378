"""A local mailbox: a Maildir (new/cur/tmp) or a plain folder of ``.eml`` files.

Maildir is what a local MTA (Postfix, fetchmail, getmail, offlineimap) delivers to;
the folder of ``.eml`` files is what the bundled sample inbox and operators dropping
files by hand use. Which one is decided by what the folder looks like.

Done means, for a Maildir, moved to ``cur/`` with the ``S`` (seen) flag, as any mail
client would; for a folder, moved into its ``done/`` subfolder. Both are single
``rename`` calls, so an email is either done or not, never half-way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from services.mail.source import RawEmail

log = logging.getLogger(__name__)

_INFO_SEP = ":2,"  # Maildir "info" suffix: unique-name:2,FLAGS
_EML_SUFFIXES = (".eml",)
DONE_DIR = "done"


def is_maildir(path: Path) -> bool:
    return (path / "new").is_dir() and (path / "cur").is_dir()


class MaildirSource:
    """``MailSource`` over a local Maildir or ``.eml`` folder at ``path``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"mail folder does not exist: {self.path}")
        self.layout = "maildir" if is_maildir(self.path) else "folder"
        self.name = self.layout

    # -- MailSource ---------------------------------------------------------------------

    def fetch(self) -> Iterator[RawEmail]:
        for source_id, file in self._pending():
            try:
                raw = file.read_bytes()
                delivered = datetime.fromtimestamp(file.stat().st_mtime, tz=UTC)
            except FileNotFoundError:
                continue  # taken by a concurrent poller or marked done meanwhile
            yield RawEmail(source_id, raw, delivered)

    def mark_done(self, source_id: str) -> None:
        if self.layout == "maildir":
            self._mark_maildir_done(source_id)
        else:
            self._mark_folder_done(source_id)

    # -- listing ------------------------------------------------------------------------

    def _pending(self) -> list[tuple[str, Path]]:
        """(source_id, file) of every not-done email, oldest delivery first."""
        if self.layout == "maildir":
            items = [
                (self._maildir_key(f.name), f)
                for sub in ("new", "cur")
                for f in (self.path / sub).iterdir()
                if f.is_file() and not f.name.startswith(".") and "S" not in _flags(f.name)
            ]
        else:
            items = [
                (f.name, f)
                for f in self.path.iterdir()
                if f.is_file() and f.name.lower().endswith(_EML_SUFFIXES)
            ]
        return sorted(items, key=lambda item: (_mtime(item[1]), item[0]))

    @staticmethod
    def _maildir_key(filename: str) -> str:
        return filename.split(_INFO_SEP, 1)[0]

    # -- done ---------------------------------------------------------------------------

    def _mark_maildir_done(self, key: str) -> None:
        _check_name(key)
        cur = self.path / "cur"
        for sub in ("new", "cur"):
            for f in (self.path / sub).iterdir():
                if self._maildir_key(f.name) != key:
                    continue
                flags = _flags(f.name)
                if sub == "cur" and "S" in flags:
                    return  # already done
                new_flags = "".join(sorted(set(flags) | {"S"}))
                os.replace(f, cur / f"{key}{_INFO_SEP}{new_flags}")
                log.debug("maildir message marked seen", extra={"source_id": key})
                return
        raise KeyError(f"no such message in maildir: {key}")

    def _mark_folder_done(self, name: str) -> None:
        _check_name(name)
        src = self.path / name
        done_dir = self.path / DONE_DIR
        if not src.exists():
            if (done_dir / name).exists():
                return  # already done
            raise KeyError(f"no such email file: {name}")
        done_dir.mkdir(exist_ok=True)
        target = done_dir / name
        n = 1
        while target.exists():  # never overwrite an earlier email of the same name
            target = done_dir / f"{Path(name).stem}.{n}{Path(name).suffix}"
            n += 1
        os.replace(src, target)
        # no file name in the log: operators name dropped files after the member
        log.debug("email file moved to done")


def _flags(filename: str) -> str:
    _, sep, flags = filename.partition(_INFO_SEP)
    return flags if sep else ""


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _check_name(name: str) -> None:
    """source ids are bare file names; refuse anything that could leave the folder."""
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise KeyError(f"invalid source id: {name!r}")
