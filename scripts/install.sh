#!/bin/sh
# Create the virtualenv and install claims-ocr with its dev and paddle extras.
# Used by `make install`; safe to run again.
set -eu
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev,paddle]'
