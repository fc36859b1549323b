"""Make the benchmarks' helper modules (`_jsonl`, `_timing`, `_baselines`) importable from the
tests, as they are from the scripts beside them (benchmarks/ is a folder, not a package)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
