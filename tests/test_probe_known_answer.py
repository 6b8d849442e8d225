"""The probe's known answers, on pipelines built offline (CPU), with the deterministic pixel embedder.

* Analytic LoRAs (``registry.probe.offline.analytic_lora``), on two pipeline sizes: a null update (the
  samples must be pixel-identical to the base's), one that zeroes the text path (every prompt gives the
  pixel-identical image at a given seed: prompt dependence exactly 0), the same at half and quarter
  strength, and a UNet-side one that scales the denoiser's output (its conditional noise falls to exactly
  the scale at the first step). Their prompt-dependence intervals must rank them, disjointly.
* Trained LoRAs: one on a single image, one on 48 varied images. The single-image LoRA pulls every prompt
  and seed toward one look (attraction) and makes seeds of one prompt alike; the varied one does not;
  the intervals must not overlap.

The same fixtures show that runs are resumable and deterministic (same sample hashes) and that the
LoRA-off grid is generated once per base and settings. The thresholds of ``registry.probe.summary`` are
calibrated on these cases (table in docs/probe.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.probe import missing_packages

pytestmark = pytest.mark.skipif(
    bool(missing_packages()), reason=f"the probe extra is not installed (missing: {', '.join(missing_packages())})"
)

SEEDS = (0, 1, 2, 3)
STEPS = 12


@pytest.fixture(scope="module")
def torch_one_thread() -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU tests on a shared 2-core machine: oversubscription costs 10×
    yield torch
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory, torch_one_thread: Any) -> dict[str, Path]:
    from registry.probe.offline import build_pipeline, shapes_dataset, train_lora

    d = tmp_path_factory.mktemp("loras")
    single = shapes_dataset(1, seed=11)
    varied = shapes_dataset(48, seed=12)
    return {
        "single": train_lora(build_pipeline("tiny"), single, "a photo of sks", d / "single.safetensors", steps=150),
        "varied": train_lora(build_pipeline("tiny"), varied, "a photo of sks", d / "varied.safetensors", steps=150),
    }


def _battery(n_per_kind: int = 4) -> Any:
    from registry.probe.battery import Battery, combine, load_battery

    parts = []
    for name in ("people", "characters", "objects"):
        b = load_battery(name)
        parts.append(Battery(b.name, b.version, b.prompts[:n_per_kind], b.description, b.negative_prompt, b.parts))
    return combine(parts, name="known-answer")


def _request(adapter: Path, seeds: tuple[int, ...] = SEEDS, battery: Any = None, **kw: Any) -> Any:
    from registry.probe.embed import PixelEmbedder
    from registry.probe.generate import GenSettings
    from registry.probe.metrics import MetricSettings
    from registry.probe.offline import build_pipeline
    from registry.probe.run import ModelSource, ProbeRequest

    return ProbeRequest(
        base=ModelSource("tiny-sd", "test:tiny-sd@seed0", load=lambda: build_pipeline("tiny")),
        battery=battery or _battery(),
        seeds=seeds,
        embedder=PixelEmbedder(16),
        adapter=adapter,
        settings=GenSettings(steps=STEPS, guidance=5.0, batch_size=8, device="cpu", noise_steps=4),
        metric_settings=MetricSettings(n_boot=1000),
        **kw,
    )


@pytest.fixture(scope="module")
def results(loras: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from registry.probe.run import run_probe
    from registry.probe.samples import SampleStore

    store = SampleStore(tmp_path_factory.mktemp("store"))
    single = run_probe(_request(loras["single"]), store)
    varied = run_probe(_request(loras["varied"]), store)
    return {"single": single, "varied": varied, "store": store}


def test_single_image_lora_is_far_more_concentrated(results: dict[str, Any]) -> None:
    from registry.probe.summary import THRESHOLDS

    s, v = results["single"], results["varied"]
    # attraction: the single-image LoRA pulls samples of different prompts and seeds toward one look
    gs, gv = s.metric("attraction", "all", "gain"), v.metric("attraction", "all", "gain")
    print("attraction single", gs, "\nvaried", gv)
    assert gs.n == gv.n == 12
    assert gs.lo > gv.hi, "intervals must not overlap"
    assert gs.lo > THRESHOLDS["attraction_strong"]
    assert gv.lo < THRESHOLDS["attraction_moderate"]
    # seed dependence within a prompt: seeds of one prompt become alike with the single-image LoRA only
    ss, sv = s.metric("seed_dependence", "all", "ratio"), v.metric("seed_dependence", "all", "ratio")
    print("seed dependence", ss, sv)
    assert ss.hi < sv.lo and ss.hi < THRESHOLDS["seed_ratio_strong"]
    vs, vv = s.metric("vendi", "all", "ratio"), v.metric("vendi", "all", "ratio")
    print("vendi", vs, vv)
    assert vs.hi < vv.lo
    assert vs.hi < THRESHOLDS["vendi_ratio_strong"]
    # both were trained with one caption for every image: both override the prompt (seed-paired prompt
    # dependence far below the base's); the summary says which of them also pulls toward one look
    for r in (s, v):
        assert r.metric("concentration", "all", "collapse").lo > THRESHOLDS["collapse_strong"]
    # the off arm is the same base grid for both
    assert s.metric("prompt_dependence", "all", "off") == v.metric("prompt_dependence", "all", "off")
    assert s.summary[0].startswith("Strong concentration") and "pulled toward one common look" in s.summary[0]
    assert v.summary[0].startswith("Strong concentration") and "pulled toward one common look" not in v.summary[0]
    assert any(t.startswith("Seeds of one prompt give much the same image") for t in s.summary)
    assert not any(t.startswith("Seeds of one prompt give much the same image") for t in v.summary)
    # the tiny LoRAs concentrate but do not copy pixels: no near-duplicate seeds (see test_probe_metrics)
    assert s.metric("seed_dup_rate", "all", "on").value == v.metric("seed_dup_rate", "all", "on").value == 0.0
    # it acts on every category alike, the neutral control included
    assert s.metric("attraction", "objects", "gain").lo > THRESHOLDS["category_collapse"]
    assert any(t.startswith("It acts on the neutral control prompts too") for t in s.summary)
    # classifier-free guidance was on: the conditional-noise magnitude is measured; the single-image LoRA
    # ignores the prompt, so the conditional part of the noise shrinks
    ns = s.metric("cond_noise", "all", "ratio")
    assert ns.hi < 1 / THRESHOLDS["cond_noise_ratio"]
    assert "cond_noise" not in s.skipped and s.skipped["fidelity"].startswith("the embedder pixel-16")


def test_record_contents(results: dict[str, Any]) -> None:
    s, store = results["single"], results["store"]
    assert len(s.samples) == 2 * 12 * len(SEEDS)
    assert {r.arm for r in s.samples} == {"off", "on"}
    assert all(store.has(r.sha256) for r in s.samples)
    assert s.sheet_sha256 and store.has(s.sheet_sha256)
    sheet = store.get(s.sheet_sha256)
    assert sheet.shape[0] == 2 * 12 * (128 + 4) + 4
    assert s.config["seeds"] == list(SEEDS) and s.config["settings"]["steps"] == STEPS
    assert s.config["scheduler"]["class"] == "DDIMScheduler"
    assert s.adapter["kind"] == "lora" and s.adapter["total_matched"] == s.adapter["file_modules"] > 0
    assert s.versions["torch"] and s.device["device"] == "cpu"
    assert set(s.timings) >= {"load_base", "load_adapter", "generate_off", "generate_on", "embed", "metrics", "total"}
    # the second probe on the same base reused every LoRA-off sample
    v = results["varied"]
    assert all(r.cached for r in v.samples if r.arm == "off")
    assert not any(r.cached for r in v.samples if r.arm == "on")


def test_resumable_and_deterministic(loras: dict[str, Path], tmp_path: Path) -> None:
    """Same inputs → same sample hashes on CPU, also when the first run is interrupted and resumed."""
    from registry.probe.run import NullProgress, run_probe
    from registry.probe.samples import SampleStore

    battery = _battery(1)
    req = _request(loras["single"], seeds=(5, 6), battery=battery)
    req.settings = type(req.settings)(**{**req.settings.as_dict(), "batch_size": 2})
    clean = run_probe(req, SampleStore(tmp_path / "a"))

    class Interrupt(NullProgress):
        def __init__(self) -> None:
            super().__init__()
            self.arm = ""
            self.done = 0

        def stage(self, name: str, total: int) -> None:
            self.arm = name

        def advance(self, n: int = 1) -> None:
            if self.arm == "generate on" and n:
                self.done += 1
                if self.done == 1:  # right after the first batch of the on grid was journaled
                    raise KeyboardInterrupt

    store_b = SampleStore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        run_probe(req, store_b, Interrupt())
    grid_lines = {p.name: len(p.read_text().splitlines()) for p in (tmp_path / "b" / "grids").iterdir()}
    assert sorted(grid_lines.values()) == [2, 4]  # header + 1 batch of the on grid; header + 3 batches off
    resumed = run_probe(req, store_b)
    assert [(r.arm, r.prompt_id, r.seed, r.sha256) for r in resumed.samples] == [
        (r.arm, r.prompt_id, r.seed, r.sha256) for r in clean.samples
    ]
    assert sum(r.cached for r in resumed.samples) == 6 + 2  # all 6 off samples, the first on batch
    assert [m.as_dict() for m in resumed.metrics] == [m.as_dict() for m in clean.metrics]


def test_checkpoint_mode_swaps_the_whole_model_and_reference_similarity(torch_one_thread: Any, tmp_path: Path) -> None:
    """A fine-tuned checkpoint is probed against its base by swapping the whole pipeline; with
    --reference, samples are compared with the reference images."""
    from registry.probe.embed import PixelEmbedder
    from registry.probe.generate import GenSettings
    from registry.probe.metrics import MetricSettings
    from registry.probe.offline import build_pipeline, shapes_dataset
    from registry.probe.run import ModelSource, ProbeRequest, run_probe
    from registry.probe.samples import SampleStore, to_uint8

    ref_dir = tmp_path / "refs"
    ref_dir.mkdir()
    store = SampleStore(tmp_path / "store")
    for i, img in enumerate(to_uint8(shapes_dataset(3, seed=4))):
        from registry.probe.samples import encode_png

        (ref_dir / f"r{i}.png").write_bytes(encode_png(img))
    (ref_dir / "notes.txt").write_text("not an image")
    req = ProbeRequest(
        base=ModelSource("tiny-sd", "test:tiny-sd@seed0", load=lambda: build_pipeline("tiny", seed=0)),
        checkpoint=ModelSource("tiny-sd-ft", "test:tiny-sd@seed1", load=lambda: build_pipeline("tiny", seed=1)),
        battery=_battery(1),
        seeds=(0, 1),
        embedder=PixelEmbedder(8),
        settings=GenSettings(steps=3, guidance=5.0, batch_size=6, device="cpu"),
        reference_dir=ref_dir,
        metric_settings=MetricSettings(n_boot=100),
    )
    res = run_probe(req, store)
    assert res.config["mode"] == "checkpoint" and res.adapter is None
    assert res.config["checkpoint"] == {"ref": "tiny-sd-ft", "key": "test:tiny-sd@seed1"}
    assert "load_checkpoint" in res.timings and "load_adapter" not in res.timings
    off = [s.sha256 for s in res.samples if s.arm == "off"]
    on = [s.sha256 for s in res.samples if s.arm == "on"]
    assert len(off) == len(on) == 6 and not set(off) & set(on)
    assert len(res.config["reference"]["images"]) == 3
    for arm in ("on", "off", "delta"):
        m = res.metric("reference_mean", "all", arm)
        assert m is not None and m.value is not None and m.lo is not None
    assert "reference" not in res.skipped
    # two random bases differ: the second one's output depends more on the prompt, not less
    assert res.metric("prompt_dependence", "all", "ratio").lo > 1.0
    assert res.summary[0].startswith("No measurable concentration: the prompt's influence at a fixed seed does not fall")
    assert any(t.startswith("Samples come closer to the reference images with the checkpoint on") for t in res.summary)


# -- analytic LoRAs, two pipeline sizes ---------------------------------------------------------------

ANALYTIC_SEEDS = (0, 1, 2)
ANALYTIC_CASES = (("null", 1.0), ("text-override", 1.0), ("text-override", 0.5), ("text-override", 0.25),
                  ("unet-output", 1.0), ("unet-output", 0.5))


@pytest.fixture(scope="module", params=["tiny", "small"])
def analytic(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, torch_one_thread: Any) -> dict[str, Any]:
    """Every analytic LoRA probed on one pipeline size: 6 prompts × 3 seeds, 6 steps, one prompt per batch
    (CPU kernels may round differently for another batch size, by one level in a pixel)."""
    from registry.probe.embed import PixelEmbedder
    from registry.probe.generate import GenSettings
    from registry.probe.metrics import MetricSettings
    from registry.probe.offline import analytic_lora, build_pipeline
    from registry.probe.run import ModelSource, ProbeRequest, run_probe
    from registry.probe.samples import SampleStore

    size = request.param
    d = tmp_path_factory.mktemp(f"analytic-{size}")
    store = SampleStore(d / "store")
    out: dict[str, Any] = {"size": size, "store": store}
    for kind, strength in ANALYTIC_CASES:
        f = analytic_lora(build_pipeline(size), kind, d / f"{kind}-{strength}.safetensors", strength=strength)
        out[f"{kind}@{strength}"] = run_probe(ProbeRequest(
            base=ModelSource(f"{size}-sd", f"test:{size}-sd@seed0", load=lambda: build_pipeline(size)),
            battery=_battery(2),
            seeds=ANALYTIC_SEEDS,
            embedder=PixelEmbedder(16),
            adapter=f,
            settings=GenSettings(steps=6, guidance=5.0, batch_size=len(ANALYTIC_SEEDS), device="cpu", noise_steps=3),
            metric_settings=MetricSettings(n_boot=500),
        ), store)
    return out


def _by_cell(res: Any, arm: str) -> dict[tuple[str, int], str]:
    return {(r.prompt_id, r.seed): r.sha256 for r in res.samples if r.arm == arm}


def test_null_lora_changes_nothing(analytic: dict[str, Any]) -> None:
    r = analytic["null@1.0"]
    assert _by_cell(r, "on") == _by_cell(r, "off")  # pixel-identical, sample by sample
    for name, arm, want in (("prompt_dependence", "ratio", 1.0), ("concentration", "collapse", 0.0),
                            ("attraction", "gain", 0.0), ("seed_dependence", "ratio", 1.0), ("vendi", "ratio", 1.0)):
        m = r.metric(name, "all", arm)
        assert (m.value, m.lo, m.hi) == (want, want, want), (name, m)
    assert r.summary[0].startswith("No measurable concentration")
    assert not any("other figures below show an effect" in t for t in r.summary)


def test_text_override_makes_output_prompt_independent(analytic: dict[str, Any]) -> None:
    r = analytic["text-override@1.0"]
    on = _by_cell(r, "on")
    for seed in ANALYTIC_SEEDS:  # every prompt gives the pixel-identical image at a given seed
        assert len({sha for (_, s), sha in on.items() if s == seed}) == 1
    assert len(set(on.values())) == len(ANALYTIC_SEEDS)  # while seeds still differ
    off = _by_cell(r, "off")
    assert len({sha for (_, s), sha in off.items() if s == 0}) == 6  # the base does depend on the prompt
    pd, col = r.metric("prompt_dependence", "all", "on"), r.metric("concentration", "all", "collapse")
    assert (pd.value, pd.lo, pd.hi) == (0.0, 0.0, 0.0)
    assert (col.value, col.lo, col.hi) == (1.0, 1.0, 1.0)
    # keys and values of every cross-attention are exactly 0: conditional and unconditional predictions agree
    assert all(s.cond_noise == 0.0 for s in r.samples if s.arm == "on")
    assert r.summary[0].startswith("Strong concentration: with the LoRA on, the prompt barely changes the image")
    assert "collapse 1.00 [1.00, 1.00]" in r.summary[0]
    assert any(t.startswith("Conditional-noise magnitude falls to 0.00 [0.00, 0.00]× the base") and
               t.endswith("(it overrides prompts).") for t in r.summary)


def test_analytic_ranking_is_disjoint_and_worded_by_threshold(analytic: dict[str, Any]) -> None:
    """Prompt dependence ranks null > quarter > half > full strength, with disjoint intervals; the UNet-side
    LoRA at full strength removes the prompt (up to float round-off), at half strength partly."""
    ratio = {k: analytic[k].metric("prompt_dependence", "all", "ratio") for k in
             ("null@1.0", "text-override@0.25", "text-override@0.5", "text-override@1.0")}
    print(analytic["size"], {k: (m.value, m.lo, m.hi) for k, m in ratio.items()})
    order = list(ratio.values())
    for hi_case, lo_case in zip(order, order[1:], strict=False):
        assert lo_case.hi < hi_case.lo, (lo_case, hi_case)
    assert ratio["text-override@0.25"].hi < 1.0 and ratio["text-override@0.5"].lo > 0.0
    uo, uh = analytic["unet-output@1.0"], analytic["unet-output@0.5"]
    assert uo.metric("prompt_dependence", "all", "ratio").hi < 0.01
    h = uh.metric("prompt_dependence", "all", "ratio")
    assert h.lo > 0.05 and h.hi < 0.9
    # closed form: the prediction is halved, so at the first step (same x_T on and off) cond − uncond halves
    assert uh.metric("cond_noise", "all", "ratio").value == pytest.approx(0.5, abs=0.02)
    words = {k: analytic[k].summary[0].split(":")[0] for k in ratio}
    assert words == {"null@1.0": "No measurable concentration", "text-override@0.25": "Moderate concentration",
                     "text-override@0.5": "Strong concentration", "text-override@1.0": "Strong concentration"}
