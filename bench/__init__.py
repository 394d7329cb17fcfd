"""Benchmarks: they print figures and write reports; they are not tests."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
