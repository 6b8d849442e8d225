"""Embedders: images (and, where the model has a text tower, prompts) to unit vectors.

The embedder is pluggable: anything with ``key``, ``describe()``, ``embed_images`` and ``embed_texts``
works. Two are built in, named by a spec string:

* ``pixel`` / ``pixel:N``: the image block-averaged to N×N (default 16), centred (its own mean
  subtracted) and normalised: the cosine of two such vectors is the correlation of their coarse pixel
  patterns. Deterministic, needs no weights; no text tower. It is the known-answer tests' embedder
  (random CLIP weights embed everything alike, so they are no use there).
* ``open_clip:ARCH`` plus ``:PRETRAINED_TAG`` (found in the local Hugging Face cache; nothing is
  downloaded when offline) or ``:/path/to/weights.safetensors`` (or a ``.pt``/``.bin`` read with
  ``weights_only=True``). For copy detection, a user-supplied SSCD-style model can be plugged in the
  same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from registry.errors import UsageError


class Embedder(Protocol):
    #: stable identity (architecture + weights); embeddings are cached under it
    key: str

    def describe(self) -> dict[str, Any]: ...

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray | None: ...


class PixelEmbedder:
    """Coarse pixel patterns: block-average to ``side``×``side``, centre, normalise."""

    def __init__(self, side: int = 16) -> None:
        if side < 1:
            raise UsageError("pixel embedder side must be at least 1")
        self.side = side
        self.key = f"pixel-{side}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "pixel", "side": self.side, "key": self.key}

    def _one(self, img: np.ndarray) -> np.ndarray:
        a = np.asarray(img)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        a = a[:, :, :3].astype(np.float64) / (255.0 if np.asarray(img).dtype == np.uint8 else 1.0)
        h, w = a.shape[:2]
        s = self.side
        if h % s == 0 and w % s == 0:
            small = a.reshape(s, h // s, s, w // s, 3).mean(axis=(1, 3))
        else:  # area-weighted resampling for sizes that do not divide
            ys = np.linspace(0, h, s + 1)
            xs = np.linspace(0, w, s + 1)
            small = np.empty((s, s, 3))
            for i in range(s):
                for j in range(s):
                    y0, y1 = int(ys[i]), max(int(ys[i]) + 1, int(np.ceil(ys[i + 1])))
                    x0, x1 = int(xs[j]), max(int(xs[j]) + 1, int(np.ceil(xs[j + 1])))
                    small[i, j] = a[y0:y1, x0:x1].mean(axis=(0, 1))
        v = small.reshape(-1)
        v = v - v.mean()
        n = np.linalg.norm(v)
        return (v / n if n > 1e-9 else np.zeros_like(v)).astype(np.float32)  # flat image: no pattern

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.side * self.side * 3), np.float32)
        return np.stack([self._one(im) for im in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray | None:
        return None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_weights(path: Path) -> dict[str, Any]:
    """A state dict from safetensors, or a torch file read with ``weights_only=True`` (never unpickled)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: dict[str, Any] = load_file(str(path))
    else:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict):
        raise UsageError(f"{path}: not a state dict of tensors")
    if sd and next(iter(sd)).startswith("module."):
        sd = {k[7:]: v for k, v in sd.items()}
    return sd


class _DropRandomInitWarning:
    """open_clip logs "No pretrained weights loaded … initialized randomly" when a model is made without a
    tag, which is how a user-supplied weights file is loaded (the file is loaded next): not true here."""

    def filter(self, record: Any) -> bool:
        return not str(record.getMessage()).startswith("No pretrained weights loaded")


def _missing_weights_message(arch: str, tag: str) -> str | None:
    """One line saying what to put where, when an open_clip tag's weights are not in the local cache;
    None when they are (or when open_clip fetches them from a URL cache we cannot check)."""
    import os

    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        known = f"its tags: {', '.join(tags)}" if tags else "open_clip does not know this architecture"
        return f"open_clip has no pretrained tag {tag!r} for {arch} ({known})"
    hub = str(cfg.get("hf_hub") or "")
    if not hub:
        return None
    repo, fname = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
    fname = fname or "open_clip_pytorch_model.bin"
    safe = "open_clip_model.safetensors" if fname == "open_clip_pytorch_model.bin" else fname.replace(".bin", ".safetensors")
    from huggingface_hub import constants, try_to_load_from_cache

    for f in (safe, fname):
        if isinstance(try_to_load_from_cache(repo, f), str):
            return None
    return (
        f"the embedder open_clip:{arch}:{tag} needs its weights, which are not in the local Hugging Face cache "
        f"({constants.HF_HUB_CACHE}): put {safe} (or {fname}) of the Hub repo {repo} there (e.g. run "
        f"'hf download {repo} {safe}' where there is network, then copy the cache), or pass the file itself: "
        f"--embedder open_clip:{arch}:/path/to/{safe}; '--embedder pixel' needs no weights"
    )


class OpenClipEmbedder:
    """An open_clip model: ``encode_image(normalize=True)`` and ``encode_text(normalize=True)``."""

    def __init__(
        self,
        arch: str,
        pretrained: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        dtype: str = "fp32",
    ) -> None:
        import open_clip
        import torch

        self.arch = arch
        self.device = device
        self.batch_size = batch_size
        weights_digest: str | None = None
        tag: str | None = None
        if pretrained and not Path(pretrained).is_file():
            if "/" in pretrained or pretrained.endswith((".safetensors", ".pt", ".bin", ".pth")):
                raise UsageError(f"open_clip weights file {pretrained} does not exist")
            if arch not in open_clip.list_models():
                raise UsageError(f"open_clip has no architecture {arch!r} (e.g. ViT-B-32, ViT-L-14)")
            msg = _missing_weights_message(arch, pretrained)
            if msg:
                raise UsageError(msg)
        try:
            if pretrained and Path(pretrained).is_file():
                import logging

                path = Path(pretrained)
                quiet = _DropRandomInitWarning()
                logging.getLogger().addFilter(quiet)
                try:
                    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device="cpu")
                finally:
                    logging.getLogger().removeFilter(quiet)
                missing, unexpected = model.load_state_dict(_load_weights(path), strict=False)
                if missing:
                    raise UsageError(
                        f"open_clip weights {path} do not fit {arch}: {len(missing)} missing tensors "
                        f"(first: {missing[0]})"
                    )
                weights_digest = "sha256:" + _file_sha256(path)
            else:
                tag = pretrained
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=pretrained, device="cpu", weights_only=True
                )
        except UsageError:
            raise
        except RuntimeError as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "Unknown model" in first or "not found" in first.lower() or "download" in first.lower():
                raise UsageError(f"open_clip cannot make {arch!r} with {pretrained!r}: {first}") from None
            raise
        except FileNotFoundError as e:
            raise UsageError(f"open_clip weights for {arch!r}/{pretrained!r} are not available offline: {e}") from None
        model.eval()
        if dtype == "fp16":
            model = model.half()
        self.model = model.to(device)
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self._torch = torch
        self.weights = weights_digest or (f"tag:{tag}" if tag else "random")
        import open_clip.version as ocv

        ident = f"{arch}|{self.weights}|{dtype}|open_clip {ocv.__version__}"
        self.key = f"open_clip-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "open_clip", "arch": self.arch, "weights": self.weights, "key": self.key}

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        from PIL import Image

        torch = self._torch
        out = []
        dtype = next(self.model.parameters()).dtype
        for i in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(Image.fromarray(np.asarray(im))) for im in images[i : i + self.batch_size]])
            with torch.inference_mode():
                f = self.model.encode_image(batch.to(self.device, dtype), normalize=True)
            out.append(f.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray | None:
        torch = self._torch
        if not hasattr(self.model, "encode_text"):
            return None
        out = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(list(texts[i : i + self.batch_size]))
            with torch.inference_mode():
                f = self.model.encode_text(tok.to(self.device), normalize=True)
            out.append(f.float().cpu().numpy())
        return np.concatenate(out) if out else None


def make_embedder(spec: str, device: str = "cpu", batch_size: int = 64) -> Embedder:
    """An embedder from its spec: ``pixel[:N]`` or ``open_clip:ARCH[:TAG_OR_FILE]``."""
    kind, _, rest = spec.partition(":")
    if kind == "pixel":
        try:
            return PixelEmbedder(int(rest) if rest else 16)
        except ValueError:
            raise UsageError(f"bad embedder {spec!r}: pixel:N needs an integer N") from None
    if kind == "open_clip":
        arch, _, pretrained = rest.partition(":")
        if not arch:
            raise UsageError("bad embedder: open_clip:ARCH[:PRETRAINED_TAG_OR_FILE]")
        return OpenClipEmbedder(arch, pretrained or None, device=device, batch_size=batch_size)
    raise UsageError(f"unknown embedder {spec!r}: use pixel[:N] or open_clip:ARCH[:PRETRAINED_TAG_OR_FILE]")
