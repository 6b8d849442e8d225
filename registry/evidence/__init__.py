"""Evidence that leaves the registry: canonical records, reports, signatures, exports, verification.

* :mod:`registry.evidence.canonical` builds a model's record from the registry and serialises it as
  RFC 8785 canonical JSON (the same registry state always gives the same bytes);
* :mod:`registry.evidence.figures` draws the report's charts as inline SVG;
* :mod:`registry.evidence.report` renders the record as HTML and PDF/A-3b (record attached);
* :mod:`registry.evidence.signing` writes the ``MANIFEST`` and the OpenSSF Model Signing signature;
* :mod:`registry.evidence.exhibit` puts an exhibit folder together;
* :mod:`registry.evidence.verify` checks an exhibit (and optionally the model file) independently;
* :mod:`registry.evidence.bom` exports CycloneDX 1.6 ML-BOM and SPDX 3.0.1 AI/Dataset documents.

Heavy dependencies (weasyprint, model_signing, cyclonedx, spdx_python_model) are imported inside the
functions that need them.
"""

from __future__ import annotations
