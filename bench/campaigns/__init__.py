"""Reliability campaigns run by ``bench/reliability.py``: one module per kind of attack.

Each module exposes ``CAMPAIGNS``, a list of :class:`campaigns.common.Campaign`; the driver
runs their trials, saves every trial as it ends (a killed run resumes at the next one) and
writes the tables into docs/BENCHMARKS.md.
"""
