"""Generation on a tiny offline pipeline: tokenizer, per-image generators, adapter checks, LoHa/LoKr
messages, conditional-noise magnitude, OOM halving, the open_clip embedder on a tiny config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry.probe import missing_packages
from tests.builders import write_safetensors

pytestmark = pytest.mark.skipif(
    bool(missing_packages()), reason=f"the probe extra is not installed (missing: {', '.join(missing_packages())})"
)


@pytest.fixture(scope="module")
def torch() -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipe(torch: Any) -> Any:
    from registry.probe.generate import GenSettings, prepare_pipeline
    from registry.probe.offline import build_pipeline

    return prepare_pipeline(build_pipeline("tiny"), GenSettings(device="cpu"))


@pytest.fixture(scope="module")
def small_lora(pipe: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from registry.probe.offline import build_pipeline, shapes_dataset, train_lora

    out = tmp_path_factory.mktemp("lora") / "small.safetensors"
    return train_lora(build_pipeline("tiny"), shapes_dataset(2, seed=3), "a photo of sks", out, steps=3, lr=1e-2)


SETTINGS: dict[str, Any] = {"steps": 4, "guidance": 5.0, "device": "cpu", "batch_size": 4, "noise_steps": 2}


def test_offline_tokenizer_matches_sd_ids(torch: Any) -> None:
    from registry.probe.offline import clip_tokenizer

    tok = clip_tokenizer()
    assert tok("a photo of a woman")["input_ids"] == [49406, 320, 1125, 539, 320, 2308, 49407]
    assert len(tok) == 49408


def test_per_image_generators_make_samples_independent_of_order(pipe: Any) -> None:
    from registry.probe.generate import GenSettings, generate_batch

    s = GenSettings(**SETTINGS)
    a, _ = generate_batch(pipe, ["a cat", "a dog"], [1, 2], s, "")
    b, _ = generate_batch(pipe, ["a dog", "a cat"], [2, 1], s, "")
    c, _ = generate_batch(pipe, ["a cat", "a dog"], [1, 2], s, "")
    assert a.dtype == np.uint8 and a.shape == (2, 32, 32, 3)
    assert np.array_equal(a, c)  # same inputs, same pixels
    # swapped order: each image follows its own generator (bit-equality is not promised across batch
    # layouts, but the images are the same up to rounding)
    assert np.abs(a[0].astype(int) - b[1].astype(int)).max() <= 2
    assert np.abs(a[1].astype(int) - b[0].astype(int)).max() <= 2
    assert np.abs(a[0].astype(int) - a[1].astype(int)).mean() > 10


def test_cond_noise_needs_guidance(pipe: Any) -> None:
    from registry.probe.generate import CondNoiseRecorder, GenSettings, generate_batch

    rec = CondNoiseRecorder(pipe.unet, steps=2)
    try:
        _, noise = generate_batch(pipe, ["a cat", "a dog", "a car"], [1, 2, 3], GenSettings(**SETTINGS), "", rec)
        assert noise is not None and noise.shape == (3,) and (noise > 0).all() and np.isfinite(noise).all()
        assert rec.used == 2  # only the first two denoising calls count
        _, none = generate_batch(pipe, ["a cat"], [1], GenSettings(**{**SETTINGS, "guidance": 1.0}), "", rec)
        assert none is None  # no classifier-free guidance: nothing to measure
    finally:
        rec.close()


def test_attach_adapter_proves_it_took_effect_and_toggles_exactly(pipe: Any, small_lora: Path) -> None:
    from registry.probe.generate import GenSettings, attach_adapter, generate_batch

    s = GenSettings(**SETTINGS)
    before, _ = generate_batch(pipe, ["a cat"], [7], s, "")
    report = attach_adapter(pipe, small_lora, adapter="t1")
    try:
        assert report.kind == "lora" and report.file_modules > 0
        assert report.matched_layers == {"unet": report.file_modules} and report.nonzero and not report.warnings
        on, _ = generate_batch(pipe, ["a cat"], [7], s, "")
        pipe.disable_lora()
        off, _ = generate_batch(pipe, ["a cat"], [7], s, "")
        pipe.enable_lora()
        assert np.array_equal(off, before)
        assert not np.array_equal(on, before)
    finally:
        pipe.delete_adapters(["t1"])


def test_adapter_that_matches_nothing_is_an_error(pipe: Any, tmp_path: Path) -> None:
    from registry.probe.generate import AdapterNotLoadable, attach_adapter

    # an SDXL-shaped kohya LoRA: the names do not exist in this base (or the shapes do not fit)
    f = tmp_path / "other.safetensors"
    rng = np.random.default_rng(0)
    write_safetensors(f, {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": rng.normal(size=(4, 2048)).astype(np.float32),
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": rng.normal(size=(640, 4)).astype(np.float32),
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.alpha": np.array(4.0, np.float32),
    })
    with pytest.raises(AdapterNotLoadable) as e:
        attach_adapter(pipe, f, adapter="t2")
    assert str(e.value).startswith("other.safetensors: diffusers could not load this lora adapter: Target modules")
    # names diffusers does not recognise at all: it only logs; the probe refuses
    g = tmp_path / "prefix.safetensors"
    write_safetensors(g, {"foo.bar.lora_A.weight": np.ones((4, 32), np.float32), "foo.bar.lora_B.weight": np.ones((32, 4), np.float32)})
    with pytest.raises(AdapterNotLoadable) as e:
        attach_adapter(pipe, g, adapter="t2")
    assert str(e.value) == (
        "prefix.safetensors: the adapter loaded but matched no layer of this base (StableDiffusionPipeline); "
        "it is probably for another architecture"
    )
    assert not pipe.get_list_adapters().get("unet")


@pytest.mark.parametrize("kind,keys", [
    ("LOHA", ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"]),
    ("LOKR", ["lokr_w1", "lokr_w2_a", "lokr_w2_b"]),
])
def test_lycoris_gets_one_clear_message(pipe: Any, tmp_path: Path, kind: str, keys: list[str]) -> None:
    from registry.probe.generate import AdapterNotLoadable, attach_adapter

    f = tmp_path / f"{kind.lower()}.safetensors"
    base = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    write_safetensors(f, {f"{base}.{k}": np.ones((4, 4), np.float32) for k in keys} | {f"{base}.alpha": np.array(4.0, np.float32)})
    with pytest.raises(AdapterNotLoadable) as e:
        attach_adapter(pipe, f, adapter="t3")
    msg = str(e.value)
    assert msg.startswith(f"{f.name} is a LyCORIS {kind} adapter")
    assert "probe the merged checkpoint with --checkpoint" in msg
    assert "\n" not in msg


def test_pickle_adapters_are_refused(pipe: Any, tmp_path: Path) -> None:
    from registry.probe.generate import AdapterNotLoadable, attach_adapter

    f = tmp_path / "x.pt"
    f.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(AdapterNotLoadable, match="only .safetensors adapters are probed"):
        attach_adapter(pipe, f)


def test_oom_halves_the_batch_and_says_so(pipe: Any, torch: Any) -> None:
    from registry.probe.generate import GenSettings, Job, ProbeError, run_jobs

    class Tight:
        """The tiny pipeline, with a GPU that fits at most two images per batch."""

        def __init__(self, inner: Any, limit: int) -> None:
            self.inner, self.limit, self.calls = inner, limit, []

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def __call__(self, **kw: Any) -> Any:
            self.calls.append(len(kw["prompt"]))
            if len(kw["prompt"]) > self.limit:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.inner(**kw)

    s = GenSettings(**{**SETTINGS, "batch_size": 8, "noise_steps": 0})
    jobs = [Job(i, f"prompt {i}", i) for i in range(5)]
    got: list[tuple[list[int], int]] = []
    notes: list[str] = []
    tight = Tight(pipe, 2)
    bs = run_jobs(tight, jobs, s, "", lambda b, im, n, size: got.append(([j.index for j in b], size)), notes.append)
    assert bs == 2
    assert tight.calls == [5, 2, 2, 1]
    # each sample is recorded with the number of images generated with it, the last batch's one included
    assert got == [([0, 1], 2), ([2, 3], 2), ([4], 1)]
    assert notes == ["out of GPU memory with 5 images per batch; halving the batch to 2"]
    # a batch larger than the jobs is halved from what was tried, never "halved" to the same size
    tight, notes = Tight(pipe, 1), []
    assert run_jobs(tight, jobs[:2], dataclasses.replace(s, batch_size=16), "", lambda *a: None, notes.append) == 1
    assert tight.calls == [2, 1, 1]
    assert notes == ["out of GPU memory with 2 images per batch; halving the batch to 1"]
    with pytest.raises(ProbeError, match="out of GPU memory even with one image per batch"):
        run_jobs(Tight(pipe, 0), jobs[:1], s, "", lambda *a: None)


def test_oom_frees_the_failed_calls_memory_before_retrying(pipe: Any, torch: Any, monkeypatch: Any) -> None:
    """The failed call's activations are referenced by the exception's traceback until its handler ends;
    memory is given back after that, or every smaller batch runs out too (found on an H200)."""
    import gc
    import weakref

    import registry.probe.generate as gen

    class Activations:
        pass

    refs: list[Any] = []

    class Failing:
        def __init__(self, inner: Any) -> None:
            self.inner, self.calls = inner, 0

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def __call__(self, **kw: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                held = Activations()  # a local of the failing frame, as a pipeline's latents are
                refs.append(weakref.ref(held))
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.inner(**kw)

    alive_at_free: list[bool] = []

    def free() -> None:
        gc.collect()
        alive_at_free.append(refs[-1]() is not None)

    monkeypatch.setattr(gen, "free_memory", free)
    s = gen.GenSettings(**{**SETTINGS, "batch_size": 2, "noise_steps": 0})
    gen.run_jobs(Failing(pipe), [gen.Job(0, "a", 0), gen.Job(1, "b", 1)], s, "", lambda *a: None)
    assert alive_at_free == [False]


def test_open_clip_embedder_on_a_tiny_config(torch: Any, tmp_path: Path) -> None:
    import open_clip

    from registry.probe.embed import OpenClipEmbedder, make_embedder

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "modelreg-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path)
    emb = make_embedder("open_clip:modelreg-tiny-clip")
    assert isinstance(emb, OpenClipEmbedder) and emb.weights == "random"
    imgs = [np.full((40, 40, 3), v, np.uint8) for v in (0, 128, 255)]
    v = emb.embed_images(imgs)
    assert v.shape == (3, 16) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    t = emb.embed_texts(["a cat", "a dog"])
    assert t is not None and t.shape == (2, 16)
    # local weights file (safetensors): same weights → same embeddings and a key naming the file digest
    from safetensors.torch import save_file

    w = tmp_path / "tiny.safetensors"
    save_file({k: x.contiguous() for k, x in emb.model.state_dict().items()}, str(w))
    emb2 = make_embedder(f"open_clip:modelreg-tiny-clip:{w}")
    assert emb2.describe()["weights"].startswith("sha256:")
    assert np.allclose(emb2.embed_images(imgs), v, atol=1e-6)
    assert emb2.key != emb.key
