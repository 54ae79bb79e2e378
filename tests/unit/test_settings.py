"""Settings: the template names only real settings, and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

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
