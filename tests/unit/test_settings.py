"""Settings: the template names only real settings, and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.config import Settings

ROOT = Path(__file__).resolve().parents[2]
ALIASES = {field.alias for field in Settings.model_fields.values()}


def test_the_env_template_sets_only_real_settings() -> None:
    template = (ROOT / "secrets.example" / "claims-ocr.env").read_text()
    names = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", template, flags=re.M))
    assert names and names <= ALIASES, sorted(names - ALIASES)


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(alias for alias in ALIASES if alias and f"`{alias}`" not in readme)
    assert not missing, f"settings the README does not mention: {missing}"


def test_secrets_are_read_from_files_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.config import get_settings

    (tmp_path / "ncb_api_key").write_text("from-a-file\n")
    (tmp_path / "imap_password").write_text("imap-secret\n")
    monkeypatch.setenv("CLAIMS_OCR_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("IMAP_PASSWORD", "from-the-environment")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.ncb_api_key.get_secret_value() == "from-a-file"
        assert settings.imap_password.get_secret_value() == "from-the-environment"
    finally:
        get_settings.cache_clear()
