"""The Google stand-in as the demo runs it: ``MAIL_SOURCE=gmail``, ``AUDIT_SINK=sheets``
or ``ARCHIVE_SINK=drive`` tried end to end on a laptop, with no Google account.

The stand-in serves Gmail, Sheets, Drive and OAuth from memory in the runner's process;
the workers reach it over HTTP through ``GOOGLE_API_ROOT_URL``. Its Gmail inbox starts
with the bundled sample inbox; the audit spreadsheet and the archive folder are created
on it, and their ids handed to the workers like real ones.
"""

from __future__ import annotations

from pathlib import Path

from services.config import Settings
from services.demo import SAMPLE_INBOX_DIR
from services.demo.google_standin import create_app
from services.demo.google_standin.gmail import store_of as gmail_store_of
from services.demo.ncb_standin import StandinServer
from services.google.discovery import build_service

DEMO_TOKEN = "demo-token"
FOLDER_TYPE = "application/vnd.google-apps.folder"


def start_google_standin(
    settings: Settings, inbox: Path = SAMPLE_INBOX_DIR
) -> tuple[StandinServer, dict[str, str]]:
    """Start the stand-in, fill it for the demo; returns it and the settings to pass on."""
    from google.oauth2.credentials import Credentials

    server = StandinServer(app=create_app()).start()
    overrides = {"GOOGLE_API_ROOT_URL": server.url}
    credentials = Credentials(token=DEMO_TOKEN)
    if settings.mail_source == "gmail":
        gmail = gmail_store_of(server.app.state.standin)
        for eml in sorted(inbox.glob("*.eml")):
            gmail.add_message(eml.read_bytes(), ("INBOX",))
    if settings.audit_sink == "sheets" and not settings.sheets_spreadsheet_id:
        from services.records.sheets import create_spreadsheet, sheets_client

        client = sheets_client(credentials, server.url)
        overrides["SHEETS_SPREADSHEET_ID"] = create_spreadsheet(client, "claims-ocr demo audit")
    if settings.archive_sink == "drive" and not settings.drive_folder_id:
        drive = build_service("drive", "v3", credentials, server.url)
        folder = (
            drive.files()
            .create(body={"name": "claims-ocr demo archive", "mimeType": FOLDER_TYPE}, fields="id")
            .execute()
        )
        overrides["DRIVE_FOLDER_ID"] = folder["id"]
    return server, overrides
