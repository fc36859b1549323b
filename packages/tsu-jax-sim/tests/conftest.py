"""Test settings: one thread per XLA CPU op (the CI machine has 2 shared cores)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
