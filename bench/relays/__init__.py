"""Relay participants under test, one file per implementation; each prints one line when ready.

Queue names come from ``BENCH_IN`` / ``BENCH_OUT`` so that a chain is wired by coinciding names
(an outqueue of one relay is the inqueue of the next) and no coordinator sits in the path.
"""
