"""Benchmarks of dammem against peer libraries, run by ``dammem bench NAME`` (see :mod:`dammem.cli`)."""
