"""Find the DejaVu TrueType fonts the receipt generator draws with.

Debian/Ubuntu ship them in ``fonts-dejavu-core``; other systems put them elsewhere,
and matplotlib bundles a copy. ``RECEIPT_FONT_DIR`` overrides the search.
"""

from __future__ import annotations

import importlib
import os
from functools import cache, lru_cache
from pathlib import Path

from PIL import ImageFont

_SEARCH_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/truetype",
    "/usr/local/share/fonts",
    "/Library/Fonts",
    str(Path.home() / ".local/share/fonts"),
)


class FontNotFoundError(RuntimeError):
    pass


def _candidate_dirs() -> list[Path]:
    dirs = [Path(p) for p in (os.environ.get("RECEIPT_FONT_DIR"),) if p]
    dirs += [Path(p) for p in _SEARCH_DIRS]
    try:  # matplotlib (optional, in no extra) ships DejaVu; use it where the OS has none
        matplotlib = importlib.import_module("matplotlib")
        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    return dirs


@cache
def font_path(filename: str) -> Path:
    """Absolute path of a font file such as ``DejaVuSansMono.ttf``."""
    for directory in _candidate_dirs():
        candidate = directory / filename
        if candidate.is_file():
            return candidate
    for directory in _candidate_dirs():  # one level deeper (e.g. /usr/share/fonts/truetype/*)
        if directory.is_dir():
            for candidate in directory.glob(f"*/{filename}"):
                return candidate
    raise FontNotFoundError(
        f"font {filename} not found; install Debian's fonts-dejavu-core "
        "(apt-get install fonts-dejavu-core) or set RECEIPT_FONT_DIR to a folder holding it"
    )


@lru_cache(maxsize=64)
def load_font(filename: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(filename)), size)
