"""Helpers for the benchmark scripts' tables (imported by benches/speed.sh's Python parts,
run from the checkout's root with benches/common on sys.path)."""
import statistics


def cell(values):
    """A figure over the rounds: the median, then the lowest and highest round in brackets."""
    values = list(values)
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
