"""Reporting: paper numbers vs ours, rendering, the reproduction summary, the analyses."""
