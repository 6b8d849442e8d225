"""Optional extras: which packages each needs, and one clear error when one is missing.

The core install (``pip install modelreg``) runs scan, show, ls, query, diff, pickle-scan, audit, dupes,
declare and log. The rest needs an extra: ``exhibit`` (exhibit, verify, export: PDF/A reports with
WeasyPrint, OpenSSF Model Signing, CycloneDX/SPDX), ``hub`` (``scan hf://``; ``audit`` reads the Hugging
Face cache without it), ``serve`` (``modelreg serve``, the web view), ``probe`` (the GPU probe, see :mod:`registry.probe`), ``ray`` (``scan|audit|probe --ray``). Checked with
``importlib.util.find_spec``, so nothing is imported here.
"""

from __future__ import annotations

from importlib.util import find_spec

from registry.errors import MissingExtra

#: extra -> (importable module, distribution) pairs
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "exhibit": (
        ("weasyprint", "weasyprint"),
        ("model_signing", "model-signing"),
        ("OpenSSL", "pyopenssl"),
        ("cryptography", "cryptography"),
        ("pypdf", "pypdf"),
        ("cyclonedx", "cyclonedx-python-lib"),
        ("spdx_python_model", "spdx-python-model"),
    ),
    "hub": (("huggingface_hub", "huggingface_hub"),),
    # scan/audit/probe --ray (registry/distributed.py)
    "ray": (("ray", "ray"),),
    "serve": (
        ("starlette", "starlette"),
        ("jinja2", "jinja2"),
        ("uvicorn", "uvicorn"),
        ("python_multipart", "python-multipart"),
    ),
}


def missing(extra: str) -> list[str]:
    """The distributions of ``extra`` that are not importable here."""
    return [dist for mod, dist in EXTRAS[extra] if find_spec(mod) is None]


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` (exit 3) naming the extra and its install command, in one line."""
    gone = missing(extra)
    if gone:
        raise MissingExtra(
            f"{what} needs the '{extra}' extra (not installed: {', '.join(gone)}): pip install 'modelreg[{extra}]'"
        )
