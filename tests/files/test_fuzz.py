"""Short fuzz runs (a few hundred examples each): only documented errors escape, every input ends.

``bench/fuzz.py`` runs the same properties much longer.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import (
    check_read_header,
    check_safetensors_header,
    check_scan,
    check_walk,
    header_docs,
    mutated,
    opcode_soup,
    seed_files,
)

pytestmark = pytest.mark.fuzz

FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FAST
@given(st.binary(max_size=512))
def test_safetensors_header_random_bytes(raw: bytes) -> None:
    check_safetensors_header(raw)


@FAST
@given(header_docs())
def test_safetensors_header_structured(raw: bytes) -> None:
    check_safetensors_header(raw)


@settings(max_examples=100, deadline=2000, derandomize=True)
@given(st.binary(max_size=256))
def test_safetensors_read_header_files(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    check_read_header(tmp_path_factory.mktemp("st"), raw)


@FAST
@given(st.binary(max_size=512))
def test_pickle_walk_random_bytes(raw: bytes) -> None:
    check_walk(raw)


@FAST
@given(opcode_soup())
def test_pickle_walk_opcode_soup(raw: bytes) -> None:
    check_walk(raw)


@FAST
@given(mutated(seed_files()))
def test_scanner_on_mutated_real_layouts(raw: bytes) -> None:
    check_scan(raw)
