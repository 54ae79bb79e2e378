"""A local stand-in for the Google APIs claims-ocr calls: Gmail v1, Drive v3, Sheets v4
and the OAuth token endpoint, on 127.0.0.1.

Tests point the real client libraries at it (``../docs`` of the project: no internet,
no Google account); ``claims-ocr run --demo`` with ``MAIL_SOURCE=gmail`` runs it so the
Gmail path can be tried end to end. It answers the paths, bodies and errors the real
APIs use, and has switches to misbehave (5xx, 429, stale history, revoked tokens).
"""

from services.demo.google_standin.app import create_app
from services.demo.google_standin.state import ApiFault, GoogleStandinState

__all__ = ["ApiFault", "GoogleStandinState", "create_app"]
