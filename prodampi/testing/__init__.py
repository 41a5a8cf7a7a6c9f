"""Helpers that tests and benchmarks share (synthetic forcing, the mpiexec job runner).

Shipped with the package so that ``prodampi bench`` and the test suite draw the same synthetic inputs; not
used by the stages.
"""
