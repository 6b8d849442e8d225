"""From an image to the models that made it (``modelreg trace``).

* :mod:`.readers`: the image's metadata (PNG text chunks, JPEG/WebP EXIF and XMP, C2PA presence) read
  with bounded chunk and segment parsers; pixels are never decoded.
* :mod:`.parsers`: each generator's format (A1111/Forge infotext, ComfyUI prompt/workflow, InvokeAI,
  Fooocus, NovelAI, SwarmUI) turned into typed :class:`~.facts.GenerationFacts`.
* :mod:`.match`: every model reference matched against the registry by every hash form and by names.
* :mod:`.store`: images and image → model links recorded in the registry.
"""

from __future__ import annotations

from registry.trace.facts import GenerationFacts, ImageTrace, ModelRef, RefMatch
from registry.trace.trace import trace_file, trace_paths

__all__ = ["GenerationFacts", "ImageTrace", "ModelRef", "RefMatch", "trace_file", "trace_paths"]
