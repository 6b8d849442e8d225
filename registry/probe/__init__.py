"""The probe: what a LoRA (or a fine-tuned checkpoint) does to generation, measured against its base.

Optional: needs the ``probe`` extra (torch, diffusers, transformers, peft, open_clip). Nothing outside
``registry/probe/`` imports this package, and importing the package itself (or ``battery``,
``metrics``, ``samples``, ``summary``) imports no torch; ``generate``, ``embed`` (open_clip),
``offline`` and ``run`` import it when they run.

Modules: ``battery`` (prompt batteries, schema-validated), ``generate`` (loading, adapters, batched
sampling with per-image generators, OOM halving), ``embed`` (pluggable embedders), ``metrics`` (figures
with bootstrap intervals over prompts), ``summary`` (plain words, documented thresholds), ``samples``
(content-addressed PNG store, contact sheets), ``run`` (one resumable run), ``offline`` (pipelines built
from configs with random weights, for tests and benchmarks).
"""

from __future__ import annotations

import importlib.util

from registry.errors import MissingExtra

#: bump when a change alters samples or figures for the same inputs
PROBE_VERSION = "1"

REQUIRED = {"torch": "torch", "diffusers": "diffusers", "transformers": "transformers", "peft": "peft",
            "open_clip": "open_clip_torch"}

INSTALL_HINT = "pip install 'modelreg[probe]'"


def missing_packages() -> list[str]:
    """Distributions of the probe extra that are not importable here."""
    return [dist for mod, dist in REQUIRED.items() if importlib.util.find_spec(mod) is None]


def require_extra() -> None:
    """Raise :class:`MissingExtra` (with the install command) unless the probe extra is installed."""
    missing = missing_packages()
    if missing:
        raise MissingExtra(
            f"the probe needs the 'probe' extra (missing: {', '.join(missing)}); install it with: {INSTALL_HINT}"
        )
