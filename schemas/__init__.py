"""JSON Schemas shipped with modelreg (data only; see ``registry.schemas`` for loading)."""
