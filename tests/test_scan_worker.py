"""The worker's shortcuts (issue 21) give what the long way gives: a small file scanned from the bytes the
scan already read, identification remembered per layout, the statistics' exact fast paths."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry import identify as ident_mod
from registry.files import safetensors as st
from registry.files.pickles import scan_file
from registry.identify import identify
from tests.builders import safetensors_bytes
from tests.pickle_builders import (
    canary_payloads,
    legacy_torch_bytes,
    safetensors_pickle_polyglot,
    torch_zip_bytes,
)


def _scan_fields(s: Any) -> dict[str, Any]:
    d = dataclasses.asdict(s)
    d.pop("elapsed_s")
    return d


def _small_files(root: Path) -> list[Path]:
    rng = np.random.default_rng(5)
    arrays = {"model.diffusion_model.out.2.weight": np.arange(32, dtype=np.float16).reshape(4, 8)}
    files = {
        "lora.safetensors": safetensors_bytes(
            {"a.lora_down.weight": rng.standard_normal((2, 4)).astype(np.float16)}, {"ss_seed": "1"}
        ),
        "trailing.safetensors": safetensors_bytes({"w": np.ones(3, np.float32)}) + b"PK\x03\x04 appended",
        "polyglot.safetensors": safetensors_pickle_polyglot(canary_payloads("/nonexistent/x")["os.system p2"]),
        "model.ckpt": torch_zip_bytes(arrays, wrap="state_dict"),
        "legacy.pt": legacy_torch_bytes(arrays),
        "evil.pkl": canary_payloads("/nonexistent/x")["builtins.exec"],
        "empty.bin": b"",
    }
    out = []
    for name, data in files.items():
        (root / name).write_bytes(data)
        out.append(root / name)
    return out


@pytest.mark.parametrize("recover", [True, False])
def test_scan_file_from_the_bytes_read_is_the_scan_of_the_file(tmp_path: Path, recover: bool) -> None:
    for p in _small_files(tmp_path):
        data = p.read_bytes()
        header = None
        if p.suffix == ".safetensors":
            n = int.from_bytes(data[:8], "little")
            header = st.parse_header(data[8 : 8 + n], n, len(data))
        a = scan_file(p, recover_tensors=recover, safetensors_header=header)
        b = scan_file(p, recover_tensors=recover, safetensors_header=header, data=data)
        assert _scan_fields(a) == _scan_fields(b), p.name
    # the cases above are not all alike: the comparison covers safe, dangerous and container verdicts
    verdicts = {scan_file(p).verdict for p in _small_files(tmp_path)}
    assert len(verdicts) >= 3, verdicts


def _pairs_sdxl_like() -> list[tuple[str, tuple[int, ...]]]:
    from tests.archspecs import clip_modules, lora_tensors, unet_modules

    shapes = {
        **lora_tensors(unet_modules("sd1", "ldm"), rank=8, prefix="lora_unet_"),
        **lora_tensors(clip_modules(768, 12), rank=8, prefix="lora_te_text_model_encoder_layers_"),
    }
    return [(k, tuple(v)) for k, v in shapes.items()]


def _fresh(pairs: list[tuple[str, tuple[int, ...]]], meta: dict[str, str] | None) -> Any:
    ident_mod._identify_shapes.cache_clear()
    return identify(pairs, meta)


@pytest.mark.parametrize(
    "meta",
    [
        None,
        {"ss_base_model_version": "sd_v1"},
        {"ss_base_model_version": "sdxl_base_v1-0"},  # contradicts the shapes: a finding
        {"modelspec.architecture": "stable-diffusion-v1/lora", "ss_base_model_version": "sdxl_base_v1-0"},
        {"ss_v2": "true"},
    ],
)
def test_identify_remembered_layout_gives_the_fresh_answer(meta: dict[str, str] | None) -> None:
    pairs = _pairs_sdxl_like()
    want = _fresh(pairs, meta)
    # the memo holds the layout now, filled by a call with other metadata
    _fresh(pairs, {"ss_base_model_version": "flux1"})
    for _ in range(2):
        got = identify(pairs, meta)
        assert got == want
        assert [f.as_dict() for f in got[1]] == [f.as_dict() for f in want[1]]
    assert ident_mod._identify_shapes.cache_info().hits >= 2


def test_identify_memo_answers_are_not_shared() -> None:
    # a layout whose answer from the shapes has findings (adapter tensors inside a checkpoint)
    pairs = [(f"model.diffusion_model.input_blocks.{i}.0.weight", (320, 4, 3, 3)) for i in range(6)]
    pairs += _pairs_sdxl_like()[:4]
    ident_mod._identify_shapes.cache_clear()
    a, fa = identify(pairs, None)
    assert a.kind == "checkpoint" and [f.rule_id for f in fa] == ["identify.adapter-keys-in-checkpoint"]
    fa.append("changed")  # type: ignore[arg-type]
    for f in fa[:-1]:
        f.evidence["x"] = 1
    dict(a.details)["x"] = 1
    a.details["y"] = 2  # type: ignore[index]
    b, fb = identify(pairs, None)
    assert "changed" not in fb
    assert all("x" not in f.evidence for f in fb)
    assert "y" not in b.details


def test_identify_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    ident_mod._identify_shapes.cache_clear()
    for i in range(ident_mod.SHAPES_MEMO_MAX + 10):
        identify([(f"lora_unet_m{i}.lora_down.weight", (4, 8)), (f"lora_unet_m{i}.lora_up.weight", (8, 4))])
    assert ident_mod._identify_shapes.cache_info().currsize == ident_mod.SHAPES_MEMO_MAX
    # a layout of more tensors than the limit is answered, not remembered
    monkeypatch.setattr(ident_mod, "SHAPES_MEMO_TENSORS", 3)
    ident_mod._identify_shapes.cache_clear()
    pairs = _pairs_sdxl_like()[:4]
    want = ident_mod._identify_shapes.__wrapped__(tuple(pairs))
    assert identify(pairs) == (want[0], want[1]) and ident_mod._identify_shapes.cache_info().currsize == 0


def test_mean_is_numpys_mean() -> None:
    from registry.stats import _mean

    rng = np.random.default_rng(11)
    for n in range(1, 20):
        for _ in range(300):
            xs = (rng.random(n) * 10.0 ** rng.uniform(-8, 8, n)).tolist()
            if rng.random() < 0.1:
                xs[int(rng.integers(n))] = float(rng.choice([0.0, -0.0, -1.5, np.inf, np.nan]))
            want, got = float(np.mean(xs)), _mean(xs)
            assert got == want or (np.isnan(want) and np.isnan(got)), (xs, got, want)


def test_svdvals_is_numpys_svd() -> None:
    from registry.stats import _svdvals

    rng = np.random.default_rng(12)
    for shape in [(1, 4, 4), (7, 8, 8), (3, 5, 9), (2, 16, 3), (6, 6)]:
        a = rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 6)
        assert _svdvals(a).tobytes() == np.linalg.svd(a, compute_uv=False).tobytes()
    with pytest.raises(np.linalg.LinAlgError):
        _svdvals(np.full((2, 3, 3), np.nan))
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.svd(np.full((2, 3, 3), np.nan), compute_uv=False)


def test_figures_of_a_stack_are_the_figures_of_each_row() -> None:
    """The group path (``_figures_stack``) against :func:`figures` row by row, ==, including rows with a
    zero singular value, an all-zero row and values at kohya's lower limit."""
    from registry.stats import _figures_stack, figures

    rng = np.random.default_rng(13)
    for k, n in [(1, 4), (3, 8), (40, 8), (5, 1), (9, 64)]:
        svs = np.abs(rng.standard_normal((k, n))) * 10.0 ** rng.uniform(-9, 3, (k, 1))
        if k > 2:
            svs[1, -1] = 0.0
            svs[2] = 0.0
        for max_rank in (n, max(n - 1, 0)):
            got = _figures_stack(svs, max_rank)
            want = [figures(svs[j], max_rank=max_rank) for j in range(k)]
            assert got == want



def _cells() -> Any:
    from hypothesis import strategies as hs

    text = hs.one_of(
        hs.text(max_size=6),
        hs.sampled_from(["lora", "unet", "", "caf\\u00e9", "\\udcff raw", "x\\ny", "é"]).map(lambda s: s.encode().decode("unicode_escape")),
    )
    key = hs.one_of(text, hs.integers(-3, 3), hs.booleans(), hs.none(), hs.floats(allow_nan=False, width=32))
    plain = hs.one_of(hs.none(), hs.booleans(), hs.integers(-(2**40), 2**40), hs.floats(allow_nan=True), text)
    return hs.recursive(
        plain,
        lambda inner: hs.one_of(
            hs.lists(inner, max_size=4),
            hs.lists(inner, max_size=3).map(tuple),
            hs.dictionaries(key, inner, max_size=4),
        ),
        max_leaves=10,
    )


def test_one_row_columns_are_the_writers_columns() -> None:
    """``_one_row_columns(row)`` against the writer's own ``rows_as_columns([row])`` (==, NaN as NaN) for
    any cell: numbers, text with lone surrogates or controls, lists, tuples, dicts with non-text keys."""
    import json as _json

    from hypothesis import given, settings
    from hypothesis import strategies as hs

    from registry.scan import _one_row_columns
    from registry.store.write import rows_as_columns

    @settings(max_examples=400, deadline=None)
    @given(hs.dictionaries(hs.sampled_from(["a", "b", "c", "per_module", "forms"]), _cells(), max_size=5))
    def check(row: dict[str, Any]) -> None:
        want = rows_as_columns([row])
        got = _one_row_columns(row)
        assert list(got) == list(want)
        # (repr through JSON: NaN == NaN, and -0.0 apart from 0.0)
        assert _json.dumps(got, default=repr) == _json.dumps(want, default=repr)

    check()
    raw = "\udcff raw"  # a lone surrogate (an undecodable name byte): the writer stores it as \xff
    tricky: list[dict[str, Any]] = [
        {"n_modules": 1, "forms": {"lora": 1}, "ranks": [4], "alphas": [], "per_module": {"rank": {"n": 1, "median": 4.0}, "x": None}},
        {"a": raw, "b": [raw], "c": {"k": raw}, "d": {"k": {"k2": raw}}, "e": {raw: 1}, "f": {"k": {raw: 1}}},
        {"a": {1: "x"}, "b": {True: 1, "k": 2}, "c": {"k": {None: 1}}, "d": (1, 2), "e": [[1], {"k": 1}], "f": "é\n"},
        {"a": {"k": [1, 2]}, "b": {"k": {"k2": [1]}}, "c": {"é": 1}, "d": ["é", 1.5, None, True]},
    ]
    for row in tricky:
        assert _json.dumps(_one_row_columns(row), default=repr) == _json.dumps(rows_as_columns([row]), default=repr), row


@pytest.mark.parametrize("size", [0, 1, 7, 8, 100, 4095, 4096, 70_000, 0x100000 + 100, 0x110000 + 5])
def test_hash_bytes_is_hash_file(tmp_path: Path, size: int) -> None:
    from registry.hashing import hash_bytes, hash_file

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    for start in (None, 0, 8, size // 2, size, size + 5):
        for limit in (10 << 20, size, max(size - 1, 0)):
            assert hash_bytes(data, start, git_sha1_limit=limit) == hash_file(p, start, git_sha1_limit=limit)
    with pytest.raises(ValueError):
        hash_bytes(data, -1)


def test_small_files_are_read_once_and_large_ones_hashed_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the scan's first read takes whole is hashed from those bytes (the same digests as
    ``hash_file``); a larger one still goes through ``hash_file``."""
    from registry import scan as scan_mod
    from registry.hashing import hash_file

    calls: list[str] = []

    def counting(path: Any, *a: Any, **k: Any) -> Any:
        calls.append(str(path))
        return hash_file(path, *a, **k)

    monkeypatch.setattr(scan_mod, "hash_file", counting)
    rng = np.random.default_rng(3)
    small = tmp_path / "small.safetensors"
    small.write_bytes(safetensors_bytes({"a.lora_down.weight": rng.standard_normal((2, 4)).astype(np.float16),
                                         "a.lora_up.weight": rng.standard_normal((4, 2)).astype(np.float16)}))  # fmt: skip
    large = tmp_path / "large.safetensors"
    large.write_bytes(safetensors_bytes({"a.lora_down.weight": rng.standard_normal((8, 640)).astype(np.float16),
                                         "a.lora_up.weight": rng.standard_normal((640, 8)).astype(np.float16)}))  # fmt: skip
    scan_mod._init_worker(set())
    for p in (small, large):
        s = p.stat()
        out = scan_mod.analyse_file(str(p), s.st_size, s.st_mtime_ns, s.st_ino, s.st_dev)
        assert out.blob is not None and out.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
        n = int.from_bytes(p.read_bytes()[:8], "little")
        assert out.blob.hashes == hash_file(p, 8 + n).as_dict()
        assert out.blob.columns["lora_modules"]["fro"][0] > 0
    assert calls == [str(large)]


def _task_files(root: Path) -> list[Path]:
    """Small files of every kind a worker task meets: kohya LoRAs of shared and different shapes (alpha or
    none, conv, a NaN module, an all-zero one, one whose factors do not fit), a PEFT LoRA whose adapter
    config sets alpha per module, a LyCORIS file, a checkpoint-like file, a PyTorch zip, a pickle, an empty
    file, a file larger than one read (mapped, not held)."""
    rng = np.random.default_rng(8)

    def f16(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float16)

    files: dict[str, bytes] = {}
    for i in range(6):
        t: dict[str, np.ndarray] = {
            "lora_unet_a.lora_down.weight": f16(4, 8),
            "lora_unet_a.lora_up.weight": f16(8, 4),
            f"lora_unet_b{i % 2}.lora_down.weight": f16(2 + i % 3, 16),
            f"lora_unet_b{i % 2}.lora_up.weight": f16(12, 2 + i % 3),
        }
        if i % 2:
            t["lora_unet_a.alpha"] = np.asarray(2.0, dtype=np.float16)
        if i == 1:
            t["lora_unet_c.lora_down.weight"] = f16(4, 8, 3, 3)
            t["lora_unet_c.lora_up.weight"] = f16(6, 4, 1, 1)
        if i == 2:
            bad = f16(4, 8)
            bad[0, 0] = np.nan
            t["lora_unet_a.lora_down.weight"] = bad
        if i == 3:
            t["lora_unet_a.lora_up.weight"] = np.zeros((8, 4), np.float16)
        if i == 4:
            t["lora_unet_d.lora_down.weight"] = f16(4, 8)
            t["lora_unet_d.lora_up.weight"] = f16(8, 5)  # ranks differ
        files[f"k{i}.safetensors"] = safetensors_bytes(t, {"ss_seed": str(i)})
    peft = {f"transformer.blocks.{b}.attn.to_k.lora_{ab}.weight": f16(4, 8) if ab == "A" else f16(8, 4) for b in range(2) for ab in "AB"}
    cfg = '{"r": 4, "lora_alpha": 8, "alpha_pattern": {"blocks.1.attn.to_k": 2}}'
    files["peft.safetensors"] = safetensors_bytes(peft, {"lora_adapter_metadata": cfg})
    files["loha.safetensors"] = safetensors_bytes(
        {"lora_unet_e.hada_w1_a": f16(8, 2), "lora_unet_e.hada_w1_b": f16(2, 8), "lora_unet_e.hada_w2_a": f16(8, 2),
         "lora_unet_e.hada_w2_b": f16(2, 8), "lora_unet_a.lora_down.weight": f16(4, 8), "lora_unet_a.lora_up.weight": f16(8, 4)}
    )  # fmt: skip
    files["ckpt.safetensors"] = safetensors_bytes({"model.diffusion_model.input_blocks.0.0.weight": f16(8, 4, 3, 3)})
    files["model.ckpt"] = torch_zip_bytes({"model.diffusion_model.out.2.weight": np.arange(32, dtype=np.float16).reshape(4, 8)}, wrap="state_dict")
    files["evil.pkl"] = canary_payloads("/nonexistent/x")["builtins.exec"]
    files["empty.safetensors"] = b""
    files["large.safetensors"] = safetensors_bytes({"lora_unet_a.lora_down.weight": f16(4, 800), "lora_unet_a.lora_up.weight": f16(800, 4)})
    for name, data in files.items():
        (root / name).write_bytes(data)
    return [root / n for n in files]


def _comparable(a: Any) -> str:
    import json as _json

    d = dataclasses.asdict(a.blob) if a.blob is not None else None
    if d is not None:
        for table, col in (("lora_summary", "seconds"), ("checkpoint_summary", "seconds"), ("pickle_scans", "elapsed_ms")):
            d["columns"].get(table, {}).pop(col, None)
    return _json.dumps([a.path, a.sha256, d, [dataclasses.asdict(f) for f in a.path_findings]], default=repr, sort_keys=True)


def test_a_task_of_files_gives_each_file_its_own_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``analyse_files`` runs the statistics' batch hook over the task's files (spectra stacked by shape
    across them); every file's results are those of ``analyse_file`` on it alone (==, NaN as NaN)."""
    from registry import scan as scan_mod
    from registry import stats as stats_mod

    calls: list[int] = []
    real = stats_mod.stacked_lora_files

    def counting(files: Any) -> None:
        calls.append(len(files))
        real(files)

    monkeypatch.setattr("registry.analyzers.stats.stacked_lora_files", counting)
    scan_mod._init_worker(set())
    paths = _task_files(tmp_path)
    items = [(str(p), p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_dev) for p in paths]
    alone = [scan_mod.analyse_file(*it) for it in items]
    assert calls == []
    together = scan_mod.analyse_files(items)
    assert calls == [9]  # the six kohya files, PEFT, LyCORIS and the large one
    assert [_comparable(a) for a in together] == [_comparable(a) for a in alone]
    kinds = {a.path.rsplit("/", 1)[1]: a.blob.columns.get("lora_modules", {}).get("method") for a in together if a.blob}
    assert kinds["k2.safetensors"] is not None and kinds["loha.safetensors"] is not None
    # the interesting cases are there: a NaN module, a zero module, a misfit, PEFT alphas
    found = {f.rule_id for a in together if a.blob for f in a.blob.findings}
    assert {"stats.nonfinite-factor", "stats.zero-update", "stats.module-unreadable"} <= found, found
    peft = next(a for a in together if a.path.endswith("peft.safetensors"))
    assert peft.blob is not None and sorted(peft.blob.columns["lora_modules"]["alpha"]) == [2.0, 8.0]


def test_a_failing_batch_hook_leaves_each_file_to_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry import scan as scan_mod

    def broken(files: Any) -> None:
        raise RuntimeError("boom")

    scan_mod._init_worker(set())
    paths = _task_files(tmp_path)
    items = [(str(p), p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_dev) for p in paths]
    alone = [scan_mod.analyse_file(*it) for it in items]
    monkeypatch.setattr("registry.analyzers.stats.stacked_lora_files", broken)
    together = scan_mod.analyse_files(items)
    assert [_comparable(a) for a in together] == [_comparable(a) for a in alone]
    assert not any(f.rule_id == "analyzer.crashed" for a in together if a.blob for f in a.blob.findings)


def test_mapped_adapters_are_hashed_from_their_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter larger than one inline hash, which the statistics read through a map of the file, is hashed
    from that map (``hash_map``) and analysed through the same map; a checkpoint-like file of that size is
    still hashed by ``hash_file``. Both give exactly what the read path gives (digests, rows, columns,
    findings)."""
    from registry import hashing
    from registry import scan as scan_mod
    from registry.hashing import hash_file

    rng = np.random.default_rng(12)
    lora: dict[str, np.ndarray] = {}
    for i in range(48):
        lora[f"lora_unet_block_{i}.lora_down.weight"] = (rng.standard_normal((8, 320)) * 0.05).astype(np.float16)
        lora[f"lora_unet_block_{i}.lora_up.weight"] = (rng.standard_normal((1280, 8)) * 0.05).astype(np.float16)
        lora[f"lora_unet_block_{i}.alpha"] = np.asarray(4.0, dtype=np.float16)
    adapter = tmp_path / "adapter.safetensors"
    adapter.write_bytes(safetensors_bytes(lora, {"ss_network_dim": "8"}))
    ckpt = tmp_path / "ckpt.safetensors"
    ckpt.write_bytes(safetensors_bytes({"model.diffusion_model.w": rng.standard_normal((600, 1000)).astype(np.float16)}))
    assert adapter.stat().st_size > hashing.INLINE_LIMIT and ckpt.stat().st_size > hashing.INLINE_LIMIT
    calls: list[str] = []
    real_map = scan_mod.hash_map

    def spy(path: Any, *a: Any, **k: Any) -> Any:
        calls.append(Path(path).name)
        return real_map(path, *a, **k)

    monkeypatch.setattr(scan_mod, "hash_map", spy)
    scan_mod._init_worker(set())

    def analyse(p: Path) -> Any:
        s = p.stat()
        out = scan_mod.analyse_file(str(p), s.st_size, s.st_mtime_ns, s.st_ino, s.st_dev)
        assert out.blob is not None and not out.path_findings
        return out.blob

    mapped = {p.name: analyse(p) for p in (adapter, ckpt)}
    assert calls == ["adapter.safetensors"]
    monkeypatch.setattr(scan_mod, "_mapped_adapter", lambda header, size: False)
    read = {p.name: analyse(p) for p in (adapter, ckpt)}
    assert calls == ["adapter.safetensors"]
    for name, p in (("adapter.safetensors", adapter), ("ckpt.safetensors", ckpt)):
        n = int.from_bytes(p.read_bytes()[:8], "little")
        assert mapped[name].hashes == read[name].hashes == hash_file(p, 8 + n).as_dict()
        assert mapped[name].findings == read[name].findings
        for table in set(mapped[name].columns) | set(read[name].columns):
            a, b = dict(mapped[name].columns[table]), dict(read[name].columns[table])
            for cols in (a, b):
                cols.pop("seconds", None)
                cols.pop("elapsed_ms", None)
            assert a == b, table
    assert mapped["adapter.safetensors"].columns["lora_modules"]["rank"] == [8] * 48


def _blas_in_pool_worker() -> tuple[list[int], int]:
    """A pool worker's BLAS thread counts before it computed anything, and its native threads that Python did
    not start, after BLAS calls of the size that OpenBLAS would split across threads."""
    import os
    import threading

    from threadpoolctl import threadpool_info

    from registry.stats import single_threaded_blas

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    a = np.ones((300, 300))
    a @ a
    single_threaded_blas()  # (what the statistics analyzer calls on a worker's first file)
    a @ a
    return before, len(os.listdir("/proc/self/task")) - threading.active_count()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
def test_pool_workers_inherit_one_blas_thread() -> None:
    """The scan's workers are forked with BLAS already limited to one thread: limited in each worker after
    the fork instead, OpenBLAS started a thread there that spun on a core after every call."""
    from registry.scan import _Pool, load_analyzers

    load_analyzers()
    pool = _Pool([], 2, set(), False)
    try:
        before, native = pool.ex.submit(_blas_in_pool_worker).result(timeout=60)
    finally:
        pool.close()
    assert before and all(n == 1 for n in before)
    assert native == 0


def _sigint_in_analysis(items: Any, rehash: bool = False) -> Any:
    import signal

    raise RuntimeError(f"SIGINT handler while analysing: {signal.getsignal(signal.SIGINT)!r}")


def test_pool_workers_take_ctrl_c_only_while_they_analyse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in a terminal reaches the workers too. A worker that it stopped while sending a result left
    half a message in the pool's result pipe and the scan hung; so a worker ignores SIGINT, except inside
    its analysis (which it stops: the KeyboardInterrupt goes back whole, as the task's result)."""
    import signal

    from registry import scan as scan_mod
    from registry.scan import _Pool, analyse_task, load_analyzers

    load_analyzers()
    monkeypatch.setattr(scan_mod, "analyse_files", _sigint_in_analysis)  # inherited by the forked workers
    pool = _Pool([], 1, set(), False)
    try:
        idle = pool.ex.submit(signal.getsignal, signal.SIGINT).result(timeout=60)
        with pytest.raises(RuntimeError) as e:
            pool.ex.submit(analyse_task, [], False).result(timeout=60)
        after = pool.ex.submit(signal.getsignal, signal.SIGINT).result(timeout=60)
    finally:
        pool.close()
    assert idle == signal.SIG_IGN and after == signal.SIG_IGN
    assert "default_int_handler" in str(e.value)
    # in the scanning process itself (-j 1, tests, benches) analyse_task leaves the handler alone
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    with pytest.raises(RuntimeError, match="default_int_handler"):
        analyse_task([], False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_worker_the_executor_lost_track_of_does_not_hold_the_scan_at_exit() -> None:
    """Ctrl-C right after a worker was forked, before the executor recorded it: that worker is never told
    to stop, and it ignores Ctrl-C outside its analysis; the workers are daemonic, so the scanning process
    ends it at exit instead of waiting for it forever (it did: the exit hung)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import os
        import concurrent.futures.process as cfp
        from registry.scan import _Pool

        real = cfp.ProcessPoolExecutor._spawn_process
        n = [0]

        def spawn(self):
            n[0] += 1
            if n[0] == 2:
                p = self._mp_context.Process(
                    target=cfp._process_worker,
                    args=(self._call_queue, self._result_queue, self._initializer, self._initargs, self._max_tasks_per_child),
                )
                p.start()
                raise KeyboardInterrupt  # after the fork, before the executor stored the process
            return real(self)

        cfp.ProcessPoolExecutor._spawn_process = spawn
        pool = _Pool.__new__(_Pool)
        pool.known = set()
        ex = pool._executor(2)
        try:
            ex.submit(os.getpid)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        ex.shutdown(wait=True, cancel_futures=True)
        print("shut down", flush=True)
        """
    )
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the scanning process did not exit: it waits for a worker nobody stops")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["interrupted", "shut", "down"]


def _bare_pool(workers: int, tasks: list[list[tuple[str, int, int, int, int]]], done: list[bool]) -> Any:
    from concurrent.futures import Future

    from registry.scan import _Pool

    pool = _Pool.__new__(_Pool)
    pool.workers, pool.taken, pool.tasks = workers, 0, tasks
    pool.done_seconds, pool.done_files, pool.done_bytes = 0.0, 0, 0
    pool.futures = []
    for d in done:
        fut: Future[Any] = Future()
        if d:
            fut.set_result([])
        pool.futures.append(fut)
    return pool


def test_the_parent_waits_for_the_last_small_files_instead_of_committing_twice() -> None:
    """The parent commits early when a core is free (the end of a scan), unless the files still being
    analysed will be done within a commit's fixed cost, as expected from the files analysed so far (per
    file and per byte, the larger): then they join that commit (measured: 1,000 tiny files, one commit
    fewer). Before any result there is nothing to go by: it commits."""
    from registry.scan import COMMIT_FIXED_SECONDS

    tiny = [(f"t{i}", 400, 0, 0, 0) for i in range(40)]
    big = [("big", 60 << 20, 0, 0, 0)]
    pool = _bare_pool(2, [tiny, tiny, tiny], [True, False, True])
    pool.taken = 1  # the first task's results taken; the second still running; the third done
    assert pool.core_free()  # nothing measured yet: commit now (as before)
    assert pool.expected_seconds([tiny]) == float("inf")
    pool.done_seconds, pool.done_files, pool.done_bytes = 0.3, 1000, 400_000  # 0.3 ms a tiny file
    assert pool.expected_seconds([tiny]) == pytest.approx(40 * 0.3e-3)  # per file: 12 ms
    assert pool.expected_seconds([tiny]) < COMMIT_FIXED_SECONDS
    assert not pool.core_free()  # 12 ms to go: wait for them
    # per byte (0.75 µs a byte) makes the 60 MiB file's task long: commit now
    pool.tasks[1] = big
    assert pool.expected_seconds([big]) == pytest.approx(0.3 / 400_000 * (60 << 20))
    assert pool.core_free()
    # a worker per unfinished task: no core is free
    pool2 = _bare_pool(2, [big, big, big], [False, False, False])
    assert not pool2.core_free()
    # the next task's results are in: take them first
    pool3 = _bare_pool(2, [big, big], [True, False])
    assert not pool3.core_free()
    # real-layout LoRAs: the last SDXL file (57 MB) after five files measured at 2.9 ms/MB
    pool4 = _bare_pool(2, [big], [False])
    pool4.done_seconds, pool4.done_files, pool4.done_bytes = 0.41, 5, 142_000_000
    assert pool4.expected_seconds([[("sdxl", 57_000_000, 0, 0, 0)]]) == pytest.approx(0.41 / 142 * 57)
    assert pool4.core_free()
