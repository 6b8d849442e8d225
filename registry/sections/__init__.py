"""Record sections: one module per section, each exposing ``SECTION``; see :mod:`registry.record`."""
