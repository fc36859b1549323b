"""Make `simulation` importable from the tests (the playground is a folder, not a package)."""

import sys
from pathlib import Path

PLAYGROUND = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PLAYGROUND))
