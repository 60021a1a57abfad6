"""Console scripts: one module per command."""
