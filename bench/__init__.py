"""Benchmarks: they print figures and write reports; they are not tests."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The tests' helpers (tests/databases.py, hosts.py, tracing.py) import here as the tests
# import them: by module name, from tests/.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
