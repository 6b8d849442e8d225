"""modelreg library: a registry and auditor for image-generation model weights.

The library never imports click and never prints; the ``cli`` package renders what it returns.
"""

from __future__ import annotations

__version__ = "0.1.0"
