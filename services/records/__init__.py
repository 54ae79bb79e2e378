"""Records kept outside the ledger: the audit log and the archive of originals.

Local implementations here; Google Sheets / Drive ones implement the same
protocols.
"""

from services.records.archive import Archive, ArchiveConflict, LocalArchive, safe_filename
from services.records.audit import COLUMNS, AuditLog, AuditRow, CsvAuditLog

__all__ = [
    "COLUMNS",
    "Archive",
    "ArchiveConflict",
    "AuditLog",
    "AuditRow",
    "CsvAuditLog",
    "LocalArchive",
    "safe_filename",
]
