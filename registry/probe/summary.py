"""The probe's figures in plain words, with every threshold named here and documented in
``docs/probe.md``.

A statement is made only when the 95 % interval supports it (its lower or upper bound is past zero, or
past one for ratios); its strength comes from the thresholds below, calibrated on the known-answer
test (``tests/test_probe_known_answer.py``: a LoRA trained on one image against one trained on many
varied images, on a tiny offline pipeline, with the pixel embedder): the single-image LoRA's collapse
is 0.70 [0.70, 0.70] and its Vendi ratio 0.45 [0.45, 0.47]; the varied LoRA's collapse is 0.04
[0.03, 0.04] and its Vendi ratio 0.85 [0.84, 0.89]. The thresholds sit between the two. The seed-collapse
thresholds (embedding cosine ≥ 0.90 and tiled pixel RMS ≤ 0.12) follow Carlini et al.'s tiled-ℓ2 idea;
the tiny LoRAs do not reproduce pixel-exact images, so those are checked on synthetic data only.
"""

from __future__ import annotations

from collections.abc import Sequence

from registry.probe.metrics import TRIGGER_GROUP, Metric

THRESHOLDS = {
    # collapse = (concentration on − off) / (1 − off): share of the way to "every prompt gives one image"
    "collapse_strong": 0.45,
    "collapse_moderate": 0.20,
    # Vendi on / off
    "vendi_ratio_strong": 0.60,
    "vendi_ratio_moderate": 0.80,
    # share of seed pairs within a prompt that are near-duplicates (embedding and tiled pixels)
    "seed_dup_rate": 0.25,
    # conditional-noise magnitude on / off
    "cond_noise_ratio": 1.25,
    # concentration with − without trigger words (LoRA on)
    "trigger_delta": 0.10,
    # a category is named as the focus when its collapse is at least this and above the control's
    "category_collapse": 0.20,
}

CONTROL_CATEGORIES = ("objects", "scenes")


def _get(ms: Sequence[Metric], name: str, group: str, arm: str) -> Metric | None:
    for m in ms:
        if (m.name, m.group, m.arm) == (name, group, arm):
            return m
    return None


def _fmt(m: Metric | None, digits: int = 2) -> str:
    if m is None or m.value is None:
        return "n/a"
    if m.lo is None or m.hi is None:
        return f"{m.value:.{digits}f}"
    return f"{m.value:.{digits}f} [{m.lo:.{digits}f}, {m.hi:.{digits}f}]"


def _above(m: Metric | None, x: float) -> bool:
    return m is not None and m.lo is not None and m.lo > x


def _below(m: Metric | None, x: float) -> bool:
    return m is not None and m.hi is not None and m.hi < x


def summarize(ms: Sequence[Metric], skipped: dict[str, str] | None = None, mode: str = "lora") -> list[str]:
    """Sentences, most important first. Intervals are 95 % bootstrap intervals over prompts."""
    t = THRESHOLDS
    what = "the LoRA" if mode == "lora" else "the checkpoint"
    out: list[str] = []
    on, off = _get(ms, "concentration", "all", "on"), _get(ms, "concentration", "all", "off")
    col = _get(ms, "concentration", "all", "collapse")
    if col is not None and col.value is not None:
        figures = f"mean cosine between different prompts' samples {_fmt(off)} off, {_fmt(on)} on; collapse {_fmt(col)}"
        if _above(col, t["collapse_strong"]):
            out.append(f"Strong concentration: with {what} on, unrelated prompts give much the same image ({figures}).")
        elif _above(col, t["collapse_moderate"]):
            out.append(f"Moderate concentration: with {what} on, unrelated prompts drift toward one look ({figures}).")
        elif _above(col, 0.0):
            out.append(f"Slight concentration, below the {t['collapse_moderate']:.2f} threshold ({figures}).")
        else:
            out.append(f"No measurable concentration across prompts ({figures}).")
        focus = [
            m for m in ms
            if m.name == "concentration" and m.arm == "collapse" and m.group not in ("all", "trigger", "tags", TRIGGER_GROUP, *CONTROL_CATEGORIES)
            and _above(m, t["category_collapse"])
        ]
        control = [m for m in ms if m.name == "concentration" and m.arm == "collapse" and m.group in CONTROL_CATEGORIES]
        named = ", ".join(f"{m.group} {_fmt(m)}" for m in focus)
        if control and any(_above(c, t["category_collapse"]) for c in control):
            ctrl = ", ".join(f"{c.group} {_fmt(c)}" for c in control)
            out.append(
                f"It acts on the neutral control prompts too ({ctrl}{'; ' + named if named else ''}): "
                "it pulls every prompt toward one look, not only people or characters."
            )
        elif focus:
            ctrl = ", ".join(f"{c.group} {_fmt(c)}" for c in control)
            out.append(
                f"The concentration is specific: {named}"
                + (f", while the neutral control stays below {t['category_collapse']:.2f} ({ctrl})." if ctrl else ".")
            )
    vr = _get(ms, "vendi", "all", "ratio")
    if vr is not None and vr.value is not None:
        von, voff = _get(ms, "vendi", "all", "on"), _get(ms, "vendi", "all", "off")
        figures = f"Vendi {_fmt(voff, 1)} off, {_fmt(von, 1)} on; ratio {_fmt(vr)}"
        if _below(vr, t["vendi_ratio_strong"]):
            out.append(f"Diversity collapses: the samples span fewer than half as many distinct images ({figures}).")
        elif _below(vr, t["vendi_ratio_moderate"]):
            out.append(f"Diversity falls ({figures}).")
        elif _below(vr, 1.0):
            out.append(f"Diversity falls slightly ({figures}).")
        else:
            out.append(f"Diversity is not reduced ({figures}).")
    dup = _get(ms, "seed_dup_rate", "all", "on")
    dd = _get(ms, "seed_dup_rate", "all", "delta")
    if dup is not None and dup.value is not None:
        if _above(dup, t["seed_dup_rate"]) and _above(dd, 0.0):
            cp = _get(ms, "seed_collapsed_prompts", "all", "on")
            out.append(
                f"Memorisation signature: different seeds of one prompt give near-duplicate images "
                f"(share of seed pairs {_fmt(dup)} on vs {_fmt(_get(ms, 'seed_dup_rate', 'all', 'off'))} off; "
                f"prompts with a near-duplicate group of half the seeds or more: {_fmt(cp)})."
            )
        else:
            out.append(f"No seed collapse: seeds of one prompt stay distinct (near-duplicate pairs {_fmt(dup)} on).")
    fd = _get(ms, "fidelity", "all", "delta")
    if fd is not None and fd.value is not None:
        if _below(fd, 0.0):
            out.append(f"Prompt fidelity drops with {what} on (image–text cosine change {_fmt(fd, 3)}): it overrides prompts.")
        else:
            out.append(f"Prompt fidelity is not reduced (image–text cosine change {_fmt(fd, 3)}).")
    nr = _get(ms, "cond_noise", "all", "ratio")
    if nr is not None and nr.value is not None:
        if _above(nr, t["cond_noise_ratio"]):
            out.append(f"Conditional-noise magnitude rises ({_fmt(nr)}× the base), as it does for memorised prompts.")
        elif _below(nr, 1.0 / t["cond_noise_ratio"]):
            out.append(
                f"Conditional-noise magnitude falls to {_fmt(nr)}× the base: the prompt steers the denoiser less "
                f"with {what} on (it overrides prompts)."
            )
        else:
            out.append(f"Conditional-noise magnitude {_fmt(nr)}× the base: no memorisation signal.")
    rd = _get(ms, "reference_mean", "all", "delta")
    if rd is not None and rd.value is not None:
        ron, roff = _get(ms, "reference_mean", "all", "on"), _get(ms, "reference_mean", "all", "off")
        if _above(rd, 0.0):
            out.append(f"Samples come closer to the reference images with {what} on (mean cosine {_fmt(roff)} off, {_fmt(ron)} on).")
        else:
            out.append(f"Samples do not come closer to the reference images (mean cosine {_fmt(roff)} off, {_fmt(ron)} on).")
    td = _get(ms, "concentration", TRIGGER_GROUP, "delta")
    if td is not None and td.value is not None:
        if _above(td, t["trigger_delta"]):
            out.append(f"The effect depends on the trigger words (concentration with − without {_fmt(td)}).")
        else:
            out.append(f"The effect does not depend on the trigger words (concentration with − without {_fmt(td)}).")
    for name, reason in sorted((skipped or {}).items()):
        out.append(f"Not measured: {name} ({reason}).")
    return out
