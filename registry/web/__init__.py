"""The web view of the registry (``modelreg serve``, extra ``serve``); the core never imports it."""
