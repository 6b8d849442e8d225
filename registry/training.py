"""Embedded training metadata normalised into typed facts (kohya ``ss_*``, ModelSpec, diffusers,
ai-toolkit, A1111 merges), and embedded hash claims checked against computed hashes.

CONTRACT (shared with declarations, exhibits and the probe): :class:`TrainingFacts` and
:func:`parse_training_metadata`. Fields may be added; the ones below keep their names and meaning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from registry.findings import Finding


@dataclass
class DatasetDir:
    """One training folder: kohya ``ss_dataset_dirs`` / ``ss_datasets`` subsets."""

    name: str
    n_repeats: int | None = None
    img_count: int | None = None
    is_reg: bool = False


@dataclass
class TrainingFacts:
    trainer: str | None = None  # "kohya-ss/sd-scripts", "ai-toolkit", "diffusers", "OneTrainer", …
    trainer_version: str | None = None  # version or commit hash
    sources: list[str] = field(default_factory=list)  # metadata families seen: "kohya", "modelspec", …
    # base model
    base_model_name: str | None = None
    base_model_version: str | None = None  # ss_base_model_version, e.g. "sdxl_base_v1-0"
    base_model_hashes: dict[str, str] = field(default_factory=dict)  # {"autov1": …, "sha256": …}
    architecture_claim: str | None = None  # modelspec.architecture, verbatim
    v2: bool | None = None
    # network
    network_module: str | None = None
    network_dim: int | None = None  # None also when "Dynamic"
    network_alpha: float | None = None
    network_args: dict[str, Any] = field(default_factory=dict)
    # data
    num_train_images: int | None = None  # kohya: already multiplied by repeats
    num_reg_images: int | None = None
    datasets: list[DatasetDir] = field(default_factory=list)
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)  # {dir: {tag: count}}
    trigger_words: list[str] = field(default_factory=list)
    # schedule
    epochs: int | None = None  # ss_num_epochs (planned)
    epoch: int | None = None  # ss_epoch (reached when saved)
    max_train_steps: int | None = None
    steps: int | None = None  # ss_steps (done when saved)
    batch_size: int | None = None
    resolution: str | None = None
    learning_rate: float | None = None
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    optimizer: str | None = None
    seed: int | None = None
    started_at: str | None = None  # ISO 8601 UTC
    finished_at: str | None = None
    # publisher fields
    title: str | None = None
    author: str | None = None
    description: str | None = None
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)
    # embedded hash claims, verbatim: {"sshs_model_hash": "…", "modelspec.hash_sha256": "0x…", …}
    hash_claims: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def distinct_images(self) -> int | None:
        """Distinct training images: the sum of ``img_count`` over non-regularisation folders."""
        counts = [d.img_count for d in self.datasets if not d.is_reg and d.img_count is not None]
        return sum(counts) if counts else None


def parse_training_metadata(metadata: dict[str, str]) -> tuple[TrainingFacts, list[Finding]]:
    """Normalise embedded metadata leniently; every parse problem is a finding, never an exception."""
    raise NotImplementedError("issue 3: training metadata normalisation is being built")
