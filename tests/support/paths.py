"""Where things are: the project root and the virtualenv's programs (twistd)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
