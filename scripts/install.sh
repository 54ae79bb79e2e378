#!/bin/sh
# Create the virtualenv and install claims-ocr with its dev and paddle extras.
# Used by `make install`; safe to run again.
set -eu
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev,paddle]'
# Three packages install a cv2 (see the paddle extra); this headless contrib build of the
# same version is a superset of all three and needs no GUI libraries.
"$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall \
  'opencv-contrib-python-headless==4.10.0.84'
