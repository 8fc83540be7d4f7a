"""Tools around the product, not part of it: the benchmark, the demo, the reference recipient a JGZ
organisation's developer starts from, and the in-process stack the demo and the tests run. The CLI reaches
them (lazily); the services and `shared` never import them (import-linter, pyproject.toml)."""
