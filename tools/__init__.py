"""Tools around the product, not part of it: the benchmark, the demo, the reference recipient a JGZ
organisation's developer starts from, and the in-process stack the demo and the tests run. Their commands
plug into the CLI (`tools/cli.py`, registered by `tools/pyproject.toml`); the product, the CLI included, never
imports them (import-linter, pyproject.toml)."""
