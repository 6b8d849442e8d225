"""The probe's figures in plain words, with every threshold named here and documented in
``docs/probe.md``.

A statement is made only when the 95 % interval supports it (its lower bound above a threshold, or its
upper bound below it). The headline's strength comes from the seed-paired figures: the prompt-dependence
ratio (how much of the prompt's influence at a fixed seed is left with the LoRA on) and the attraction
gain (how far samples of different prompts and seeds are pulled toward one common look). The thresholds
are calibrated on the known-answer suite (``tests/test_probe_known_answer.py``: analytic LoRAs whose
effect follows from their weights, and LoRAs trained on one image or on many; table in
``docs/probe.md``). The headline never contradicts a line below it: when neither headline figure passes
a threshold but another figure shows an effect, the headline says so.

Intervals are printed rounded *outward* (lower bound down, upper bound up), with as many digits as it
takes for the printed bound to show the claim that the sentence makes (an upper bound of 0.995 under
"below 1" is printed 0.995, never 1.00 nor 0.99).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from registry.probe.metrics import TRIGGER_GROUP, Metric

THRESHOLDS = {
    # seed-paired collapse = 1 − prompt-dependence ratio (= (concentration on − off) / (1 − off), the
    # concentration of different prompts' samples at the same seed): the share of the prompt's influence
    # that the LoRA removes; 1 = the output no longer depends on the prompt
    "collapse_strong": 0.45,
    "collapse_moderate": 0.20,
    # attraction gain = (on − off) / (1 − off) of the mean cosine between samples that share neither
    # prompt nor seed: how far everything is pulled toward one common look
    "attraction_strong": 0.30,
    "attraction_moderate": 0.10,
    # seed dependence within a prompt, on / off: seeds of one prompt give much the same image
    "seed_ratio_strong": 0.50,
    # Vendi on / off
    "vendi_ratio_strong": 0.60,
    "vendi_ratio_moderate": 0.80,
    # share of seed pairs within a prompt that are near-duplicates (embedding and tiled pixels)
    "seed_dup_rate": 0.25,
    # conditional-noise magnitude on / off
    "cond_noise_ratio": 1.25,
    # concentration with − without trigger words (LoRA on, seed-paired)
    "trigger_delta": 0.10,
    # a category is named as the focus when its collapse or attraction passes the moderate threshold
    "category_collapse": 0.20,
}

CONTROL_CATEGORIES = ("objects", "scenes")
LEVELS = ("none", "slight", "moderate", "strong")
MAX_DIGITS = 6


def _get(ms: Sequence[Metric], name: str, group: str, arm: str) -> Metric | None:
    for m in ms:
        if (m.name, m.group, m.arm) == (name, group, arm):
            return m
    return None


def _dec(x: float, digits: int, rounding: str) -> str:
    q = Decimal(1).scaleb(-digits)
    d = Decimal(repr(float(x))).quantize(q, rounding=rounding)
    if d == 0:
        d = abs(d)  # no "-0.00"
    return f"{d:.{digits}f}"


def fmt_interval(value: float | None, lo: float | None, hi: float | None, digits: int = 2,
                 above: float | None = None, below: float | None = None) -> str:
    """``value [lo, hi]`` with the bounds rounded outward. ``above``/``below``: the claim the text makes
    (lo > above, hi < below); digits are added (up to 6) until the printed bound shows it."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return _dec(value, digits, ROUND_HALF_EVEN)
    d = digits
    while d < MAX_DIGITS and (
        (above is not None and lo > above and Decimal(_dec(lo, d, ROUND_FLOOR)) <= Decimal(repr(above)))
        or (below is not None and hi < below and Decimal(_dec(hi, d, ROUND_CEILING)) >= Decimal(repr(below)))
    ):
        d += 1
    return f"{_dec(value, d, ROUND_HALF_EVEN)} [{_dec(lo, d, ROUND_FLOOR)}, {_dec(hi, d, ROUND_CEILING)}]"


def _fmt(m: Metric | None, digits: int = 2, above: float | None = None, below: float | None = None) -> str:
    if m is None:
        return "n/a"
    return fmt_interval(m.value, m.lo, m.hi, digits, above, below)


def _above(m: Metric | None, x: float) -> bool:
    """The lower bound is above ``x`` by a margin that can be printed (at most 6 digits)."""
    return (m is not None and m.lo is not None and math.isfinite(m.lo)
            and Decimal(_dec(m.lo, MAX_DIGITS, ROUND_FLOOR)) > Decimal(repr(x)))


def _below(m: Metric | None, x: float) -> bool:
    """The upper bound is below ``x`` by a margin that can be printed (at most 6 digits)."""
    return (m is not None and m.hi is not None and math.isfinite(m.hi)
            and Decimal(_dec(m.hi, MAX_DIGITS, ROUND_CEILING)) < Decimal(repr(x)))


def level(ms: Sequence[Metric], group: str = "all") -> tuple[str, list[str]]:
    """The concentration level of a group from its seed-paired collapse and its attraction gain, and
    which of the two decided (``"prompt"``, ``"attraction"``)."""
    t = THRESHOLDS
    col = _get(ms, "concentration", group, "collapse")
    gain = _get(ms, "attraction", group, "gain")
    best, why = 0, []
    for m, strong, moderate, tag in ((col, t["collapse_strong"], t["collapse_moderate"], "prompt"),
                                     (gain, t["attraction_strong"], t["attraction_moderate"], "attraction")):
        lv = 3 if _above(m, strong) else 2 if _above(m, moderate) else 1 if _above(m, 0.0) else 0
        if lv > best:
            best, why = lv, [tag]
        elif lv == best and lv > 0:
            why.append(tag)
    return LEVELS[best], why


def _threshold_for(lv: str, tag: str) -> float:
    t = THRESHOLDS
    key = {"prompt": "collapse", "attraction": "attraction"}[tag]
    return {"strong": t[f"{key}_strong"], "moderate": t[f"{key}_moderate"]}.get(lv, 0.0)


def summarize(ms: Sequence[Metric], skipped: dict[str, str] | None = None, mode: str = "lora") -> list[str]:
    """Sentences, most important first. Intervals are 95 % bootstrap intervals over prompts and seeds."""
    t = THRESHOLDS
    what = "the LoRA" if mode == "lora" else "the checkpoint"
    out: list[str] = []
    body: list[str] = []
    other_effects: list[str] = []  # figures below that show an effect, for a headline of "none"

    lv, why = level(ms)
    col = _get(ms, "concentration", "all", "collapse")
    pr = _get(ms, "prompt_dependence", "all", "ratio")
    gain = _get(ms, "attraction", "all", "gain")
    headline = None
    if col is not None and col.value is not None:
        pr_txt = _fmt(pr, below=(1.0 - _threshold_for(lv, "prompt")) if "prompt" in why else None)
        col_txt = _fmt(col, above=_threshold_for(lv, "prompt") if "prompt" in why else None)
        gain_txt = _fmt(gain, above=_threshold_for(lv, "attraction") if "attraction" in why else None)
        figures = (f"prompt dependence at a fixed seed, on/off {pr_txt}, i.e. collapse {col_txt}; "
                   f"attraction gain {gain_txt}")
        reasons = []
        if "prompt" in why:
            reasons.append("the prompt changes the image less at a fixed seed" if lv != "strong"
                           else "the prompt barely changes the image at a fixed seed")
        if "attraction" in why:
            reasons.append("samples of different prompts and seeds are pulled toward one common look")
        if lv == "strong":
            headline = f"Strong concentration: with {what} on, {' and '.join(reasons)} ({figures})."
        elif lv == "moderate":
            headline = f"Moderate concentration: with {what} on, {' and '.join(reasons)} ({figures})."
        elif lv == "slight":
            headline = (f"Slight concentration, below the moderate thresholds (collapse {t['collapse_moderate']:.2f}, "
                        f"attraction {t['attraction_moderate']:.2f}): {' and '.join(reasons)} ({figures}).")
        else:
            headline = (f"No measurable concentration: the prompt's influence at a fixed seed does not fall and samples "
                        f"are not pulled toward a common look ({figures}).")
        cats = sorted({m.group for m in ms if m.name == "concentration" and m.arm == "collapse"}
                      - {"all", "trigger", "tags", TRIGGER_GROUP})
        focus = [c for c in cats if c not in CONTROL_CATEGORIES and level(ms, c)[0] in ("moderate", "strong")]
        control = [c for c in cats if c in CONTROL_CATEGORIES]

        def cat_txt(c: str) -> str:
            return (f"{c} collapse {_fmt(_get(ms, 'concentration', c, 'collapse'))}, "
                    f"attraction {_fmt(_get(ms, 'attraction', c, 'gain'))}")

        named = "; ".join(cat_txt(c) for c in focus)
        if control and any(level(ms, c)[0] in ("moderate", "strong") for c in control):
            body.append(
                f"It acts on the neutral control prompts too ({'; '.join(cat_txt(c) for c in control)}"
                f"{'; ' + named if named else ''}): it pulls every prompt toward one look, not only people or characters."
            )
        elif focus:
            body.append(
                f"The concentration is specific: {named}"
                + (f", while the neutral control stays below the moderate thresholds ({'; '.join(cat_txt(c) for c in control)})."
                   if control else ".")
            )
    sr = _get(ms, "seed_dependence", "all", "ratio")
    if sr is not None and sr.value is not None:
        if _below(sr, t["seed_ratio_strong"]):
            body.append(f"Seeds of one prompt give much the same image with {what} on "
                        f"(seed dependence on/off {_fmt(sr, below=t['seed_ratio_strong'])}).")
            other_effects.append("seed dependence falls")
        elif _below(sr, 1.0):
            body.append(f"Seed dependence within a prompt falls slightly (on/off {_fmt(sr, below=1.0)}).")
        else:
            body.append(f"Seed dependence within a prompt is not reduced (on/off {_fmt(sr)}).")
    vr = _get(ms, "vendi", "all", "ratio")
    if vr is not None and vr.value is not None:
        von, voff = _get(ms, "vendi", "all", "on"), _get(ms, "vendi", "all", "off")
        vf = f"Vendi {_fmt(voff, 1)} off, {_fmt(von, 1)} on"
        if _below(vr, t["vendi_ratio_strong"]):
            body.append(f"Diversity collapses: the samples span fewer than {t['vendi_ratio_strong']:.0%} as many distinct "
                        f"images ({vf}; ratio {_fmt(vr, below=t['vendi_ratio_strong'])}).")
            other_effects.append("diversity collapses")
        elif _below(vr, t["vendi_ratio_moderate"]):
            body.append(f"Diversity falls ({vf}; ratio {_fmt(vr, below=t['vendi_ratio_moderate'])}).")
            other_effects.append("diversity falls")
        elif _below(vr, 1.0):
            body.append(f"Diversity falls slightly ({vf}; ratio {_fmt(vr, below=1.0)}).")
        else:
            body.append(f"Diversity is not reduced ({vf}; ratio {_fmt(vr)}).")
    dup = _get(ms, "seed_dup_rate", "all", "on")
    dd = _get(ms, "seed_dup_rate", "all", "delta")
    if dup is not None and dup.value is not None:
        if _above(dup, t["seed_dup_rate"]) and _above(dd, 0.0):
            cp = _get(ms, "seed_collapsed_prompts", "all", "on")
            body.append(
                f"Memorisation signature: different seeds of one prompt give near-duplicate images "
                f"(share of seed pairs {_fmt(dup, above=t['seed_dup_rate'])} on vs "
                f"{_fmt(_get(ms, 'seed_dup_rate', 'all', 'off'))} off; "
                f"prompts with a near-duplicate group of half the seeds or more: {_fmt(cp)})."
            )
            other_effects.append("near-duplicate seeds")
        else:
            body.append(f"No seed collapse: seeds of one prompt do not give near-duplicates (near-duplicate pairs {_fmt(dup)} on).")
    concentrated = lv in ("moderate", "strong")
    fd = _get(ms, "fidelity", "all", "delta")
    if fd is not None and fd.value is not None:
        if _below(fd, 0.0):
            body.append(f"Prompt fidelity drops with {what} on (image–text cosine change {_fmt(fd, 3, below=0.0)})"
                        + (": it overrides prompts." if concentrated else "."))
            other_effects.append("prompt fidelity drops")
        else:
            body.append(f"Prompt fidelity is not reduced (image–text cosine change {_fmt(fd, 3)}).")
    nr = _get(ms, "cond_noise", "all", "ratio")
    if nr is not None and nr.value is not None:
        if _above(nr, t["cond_noise_ratio"]):
            body.append(f"Conditional-noise magnitude rises ({_fmt(nr, above=t['cond_noise_ratio'])}× the base), "
                        "as it does for memorised prompts.")
            other_effects.append("conditional noise rises")
        elif _below(nr, 1.0 / t["cond_noise_ratio"]):
            body.append(
                f"Conditional-noise magnitude falls to {_fmt(nr, below=1.0 / t['cond_noise_ratio'])}× the base: the prompt "
                f"steers the denoiser less with {what} on"
                + (" (it overrides prompts)." if concentrated else
                   ", although the images' prompt dependence does not fall past the moderate threshold.")
            )
            if not concentrated:
                other_effects.append("conditional noise falls")
        else:
            body.append(f"Conditional-noise magnitude {_fmt(nr)}× the base: no memorisation signal.")
    rd = _get(ms, "reference_mean", "all", "delta")
    if rd is not None and rd.value is not None:
        ron, roff = _get(ms, "reference_mean", "all", "on"), _get(ms, "reference_mean", "all", "off")
        if _above(rd, 0.0):
            body.append(f"Samples come closer to the reference images with {what} on "
                        f"(mean cosine {_fmt(roff)} off, {_fmt(ron)} on; change {_fmt(rd, above=0.0)}).")
            other_effects.append("samples come closer to the references")
        else:
            body.append(f"Samples do not come closer to the reference images (mean cosine {_fmt(roff)} off, {_fmt(ron)} on).")
    td = _get(ms, "concentration", TRIGGER_GROUP, "delta")
    if td is not None and td.value is not None:
        if _above(td, t["trigger_delta"]):
            body.append(f"The effect depends on the trigger words (concentration with − without {_fmt(td, above=t['trigger_delta'])}).")
        else:
            body.append(f"The effect does not depend on the trigger words (concentration with − without {_fmt(td)}).")
    if headline is not None:
        if lv == "none" and other_effects:
            headline = headline[:-1] + f"; but other figures below show an effect: {', '.join(other_effects)}."
        out.append(headline)
    out.extend(body)
    for name, reason in sorted((skipped or {}).items()):
        out.append(f"Not measured: {name} ({reason}).")
    return out
