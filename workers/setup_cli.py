"""Operator commands for setting up a mailbox and Google Workspace, and checking it all.

``google-auth`` signs in once and writes the token; ``sheets-init`` creates the audit
spreadsheet; ``doctor`` tries every connection; ``send-test-claim`` puts a generated claim
email in the configured mailbox so one claim can be followed end to end.
"""

from __future__ import annotations

import argparse
import base64
import imaplib
import os
import time
import uuid
from typing import Any

from services.config import Settings


def add_setup_commands(commands: Any) -> None:
    auth = commands.add_parser(
        "google-auth",
        help="sign in to Google once (installed-app OAuth) and write the token file",
        description=(
            "Open Google's consent page for the OAuth client in GOOGLE_CREDENTIALS_FILE "
            "(an installed-app client, from Google Cloud console > Credentials), wait for "
            "the redirect on a local port, and write the token (refresh token included) to "
            "GOOGLE_TOKEN_FILE (DATA_DIR/google-token.json), readable by its owner only. "
            "Scopes: gmail.modify, spreadsheets, drive. A service account (Workspace) needs "
            "no sign-in: set GOOGLE_CREDENTIALS_FILE to its key and GOOGLE_DELEGATED_USER."
        ),
    )
    auth.add_argument("--port", type=int, default=0, help="local redirect port (0: any free)")
    auth.add_argument(
        "--no-browser", action="store_true", help="print the URL instead of opening a browser"
    )
    auth.set_defaults(handler=_google_auth)

    sheets = commands.add_parser(
        "sheets-init",
        help="create the audit spreadsheet and print its id (for SHEETS_SPREADSHEET_ID)",
        description=(
            "Create a Google spreadsheet for the audit log, with this month's tab and its "
            "header row, and print its id. Put the id in SHEETS_SPREADSHEET_ID. Tabs for "
            "later months are created as rows for them arrive."
        ),
    )
    sheets.add_argument("--title", default="claims-ocr audit log", help="spreadsheet title")
    sheets.set_defaults(handler=_sheets_init)

    doctor = commands.add_parser(
        "doctor",
        help="try every configured connection and credential; say exactly what is wrong",
        description=(
            "Check the ledger, the broker, the mailbox (Gmail, IMAP or folder), the audit "
            "log (Sheets or CSV), the archive (Drive or folder) and NCB (its health, and "
            "whether it accepts our key, by sending an empty claim it must refuse as "
            "invalid). Writes nothing but an empty probe file in a local audit or archive "
            "folder, removed at once. Exits 0 when every check passes, 1 otherwise."
        ),
    )
    doctor.set_defaults(handler=_doctor)

    send = commands.add_parser(
        "send-test-claim",
        help="put a claim email with a generated receipt into the configured mailbox",
        description=(
            "Build a claim email with a generated receipt (no real data) and put it in the "
            "mailbox MAIL_SOURCE names: Gmail (messages.insert into the inbox), IMAP "
            "(APPEND to IMAP_FOLDER) or the Maildir/folder. The next poll picks it up."
        ),
    )
    send.add_argument("--to", default="claims@example.com", help="the To: address shown")
    send.set_defaults(handler=_send_test_claim)


def _google_auth(args: argparse.Namespace, parser: argparse.ArgumentParser, s: Settings) -> int:
    from services.google.auth import ALL_SCOPES, run_installed_app_flow

    if s.google_credentials_file is None or not s.google_credentials_file.is_file():
        parser.error("set GOOGLE_CREDENTIALS_FILE to the OAuth client file of an installed app")
    run_installed_app_flow(
        s.google_credentials_file,
        s.google_token,
        ALL_SCOPES,
        port=args.port,
        open_browser=not args.no_browser,
        auth_uri=s.google_oauth_auth_uri if s.google_api_root_url else "",
        token_uri=s.google_oauth_token_uri if s.google_api_root_url else "",
    )
    print(f"token written to {s.google_token}")
    return 0


def _sheets_init(args: argparse.Namespace, parser: argparse.ArgumentParser, s: Settings) -> int:
    from services.records.sheets import create_spreadsheet, sheets_client
    from workers.wiring import google_credentials

    client = sheets_client(google_credentials(s), s.google_api_root_url)
    spreadsheet_id = create_spreadsheet(client, args.title)
    print(spreadsheet_id)
    return 0


def _doctor(args: argparse.Namespace, parser: argparse.ArgumentParser, s: Settings) -> int:
    from workers.doctor import run_checks

    failed = 0
    for result in run_checks(s):
        failed += not result.ok
        print(f"{'ok  ' if result.ok else 'FAIL'}  {result.name}: {result.message}", flush=True)
    return 1 if failed else 0


def _send_test_claim(args: argparse.Namespace, parser: argparse.ArgumentParser, s: Settings) -> int:
    from services.demo.test_claim import make_test_claim_email

    raw = make_test_claim_email(to=args.to)
    if s.mail_source == "gmail":
        where = _insert_into_gmail(s, raw)
    elif s.mail_source == "imap":
        where = _append_over_imap(s, raw)
    else:
        where = _drop_into_folder(s, raw)
    print(f"test claim email put in {where}")
    return 0


def _insert_into_gmail(s: Settings, raw: bytes) -> str:
    from services.google.discovery import build_service
    from workers.wiring import google_credentials

    gmail = build_service("gmail", "v1", google_credentials(s), s.google_api_root_url)
    body = {"raw": base64.urlsafe_b64encode(raw).decode(), "labelIds": ["INBOX", "UNREAD"]}
    sent = gmail.users().messages().insert(userId=s.gmail_user, body=body).execute()
    return f"the Gmail inbox (message {sent['id']})"


def _append_over_imap(s: Settings, raw: bytes) -> str:
    from workers.wiring import imap_ssl_context

    context = imap_ssl_context(s)
    if s.imap_security == "ssl":
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(s.imap_host, s.imap_port, ssl_context=context)
    else:
        conn = imaplib.IMAP4(s.imap_host, s.imap_port)
        conn.starttls(ssl_context=context)
    try:
        conn.login(s.imap_user, s.imap_password.get_secret_value())
        conn.append(s.imap_folder, None, imaplib.Time2Internaldate(time.time()), raw)
    finally:
        conn.logout()
    return f"IMAP folder {s.imap_folder}"


def _drop_into_folder(s: Settings, raw: bytes) -> str:
    """Maildir delivery (write to tmp/, rename into new/), or an .eml in a plain folder."""
    from services.mail.maildir import is_maildir

    folder = s.maildir
    name = f"{int(time.time())}.{uuid.uuid4().hex}.claims-ocr-test"
    if is_maildir(folder):
        tmp = folder / "tmp" / name
        tmp.write_bytes(raw)
        os.replace(tmp, folder / "new" / name)
        return f"Maildir {folder}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.eml").write_bytes(raw)
    return f"folder {folder}"
