"""Helpers for the benchmark scripts' tables (imported by the Python parts of benches/speed.sh
and benches/alternate.sh, run from the checkout's root with benches/common on sys.path)."""
import statistics


def cell(values, digits=2):
    """A figure over the rounds: the median, then the lowest and highest round in brackets."""
    values = list(values)
    med, lo, hi = statistics.median(values), min(values), max(values)
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"
