"""Analyzers discovered by the scan pipeline; one module per analyzer, each exposing ``ANALYZER``.

See :mod:`registry.analysis` for the contract.
"""
