"""The content-addressed PNG store, deterministic encoding, contact sheets, the pixel embedder."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from registry.probe.embed import PixelEmbedder, make_embedder
from registry.probe.samples import SampleStore, contact_sheet, decode_png, encode_png, to_uint8


def _img(seed: int, h: int = 24, w: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_roundtrip_deterministic_and_readable_by_pillow() -> None:
    a = _img(1)
    data = encode_png(a)
    assert data == encode_png(a.copy())
    assert np.array_equal(decode_png(data), a)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB" and im.size == (20, 24)
        assert np.array_equal(np.asarray(im), a)
    grey = _img(2)[:, :, 0]
    assert np.array_equal(decode_png(encode_png(grey)), grey)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(a.astype(np.float32))


def test_decode_falls_back_to_pillow_for_other_pngs() -> None:
    from PIL import Image

    a = _img(3)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=True)
    assert np.array_equal(decode_png(buf.getvalue()), a)


def test_to_uint8_rounds_like_diffusers() -> None:
    x = np.array([[[[0.0, 0.5, 1.0]], [[1.2, -0.1, 0.00196]]]])
    assert to_uint8(x).tolist() == [[[[0, 128, 255]], [[255, 0, 0]]]]


def test_store(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "probe")
    a = _img(4)
    sha = store.put(a)
    assert sha == hashlib.sha256(encode_png(a)).hexdigest()
    assert store.sample_path(sha) == tmp_path / "probe" / "samples" / sha[:2] / f"{sha}.png"
    assert store.put(a) == sha and store.has(sha)
    assert np.array_equal(store.get(sha), a)
    store.sample_path(sha).write_bytes(encode_png(_img(5)))
    with pytest.raises(ValueError, match="corrupt"):
        store.get(sha)
    assert store.get_embedding("pixel-16", sha) is None
    store.put_embedding("pixel-16", sha, np.arange(4, dtype=np.float64))
    got = store.get_embedding("pixel-16", sha)
    assert got is not None and got.dtype == np.float32 and got.tolist() == [0, 1, 2, 3]


def test_contact_sheet_layout() -> None:
    rows = [("a prompt [off]", [_img(i, 32, 32) for i in range(3)]), ("a prompt [on]", [_img(9, 32, 32)] * 3)]
    sheet = contact_sheet(rows, thumb=16, label_width=40, pad=2)
    assert sheet.shape == (2 * (16 + 2) + 2, 40 + 3 * (16 + 2) + 2, 3)
    assert sheet.dtype == np.uint8
    assert (sheet[0, :, :] == 255).all()  # top padding is white
    assert not (sheet[2:18, 40:56] == 255).all()  # a thumbnail is there


def test_pixel_embedder() -> None:
    emb = PixelEmbedder(4)
    a = np.zeros((8, 8, 3), np.uint8)
    a[:4] = 200
    v = emb.embed_images([a, a, 255 - a, np.full((8, 8, 3), 7, np.uint8)])
    assert v.shape == (4, 48) and v.dtype == np.float32
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(v[0] @ v[2]) == pytest.approx(-1.0, abs=1e-6)  # inverted image: correlation −1
    assert float(np.linalg.norm(v[3])) == 0.0  # a flat image has no pattern
    # sizes that do not divide use area averaging; a scaled copy embeds the same
    big = np.kron(a, np.ones((3, 3, 1), np.uint8))  # 24×24
    odd = big[:23, :23]
    assert float(emb.embed_images([big])[0] @ v[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(emb.embed_images([odd])[0] @ v[0]) > 0.95
    assert emb.embed_texts(["x"]) is None
    assert make_embedder("pixel:8").key == "pixel-8"
    from registry.errors import UsageError

    with pytest.raises(UsageError):
        make_embedder("clip")
    with pytest.raises(UsageError):
        make_embedder("pixel:x")


def test_grid_entries_name_their_batch_and_place_as_journaled(tmp_path: Path) -> None:
    """Each journal line is one batch: its samples get the key of the line's job keys in order and their
    place in it, when appended and when the journal is read back (also a journal written before batch
    keys existed: they come from the line itself)."""
    import json

    from registry.probe.run import Grid, batch_key

    store = SampleStore(tmp_path)
    shas = [store.put(_img(i)) for i in range(5)]
    grid = Grid(store, "g", {"h": 1})
    grid.append([{"key": f"k{i}", "sha256": shas[i], "cond_noise": None} for i in (0, 1, 2)], 3, 0.1)
    grid.append([{"key": f"k{i}", "sha256": shas[i], "cond_noise": None} for i in (4, 3)], 2, 0.1)
    first, second = batch_key("g", ["k0", "k1", "k2"]), batch_key("g", ["k4", "k3"])
    assert first != second and first != batch_key("g", ["k1", "k0", "k2"]) and len(first) == 16
    assert first != batch_key("other grid", ["k0", "k1", "k2"])  # the LoRA-on grid has the same job keys
    want = {"k0": (first, 0, 3), "k1": (first, 1, 3), "k2": (first, 2, 3), "k4": (second, 0, 2), "k3": (second, 1, 2)}

    def seen(g: Grid) -> dict[str, tuple[str, int, int]]:
        return {k: (e["batch_key"], e["batch_position"], e["batch_size"]) for k, e in g.entries.items()}

    assert seen(grid) == want
    assert seen(Grid(store, "g", {"h": 1})) == want
    lines = grid.path.read_text().splitlines()
    assert all("batch_key" not in json.loads(x).get("jobs", [{}])[0] for x in lines[1:])  # derived, not stored
