"""Click commands for modelreg; one module per command, discovered by the root group."""
