"""Boundaries stay checkable (STYLE.md habit 12): services never import each other, shared never imports
services, and a service's domain imports no framework."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("fastapi", "starlette", "sqlalchemy", "aio_pika", "aiormq", "httpx", "alembic", "jose")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def service_names() -> list[str]:
    return sorted(p.name for p in (ROOT / "services").iterdir() if (p / "main.py").exists())


def test_shared_never_imports_services() -> None:
    for path in (ROOT / "shared").rglob("*.py"):
        assert not any(name.split(".")[0] == "services" for name in imports_of(path)), path


def test_services_never_import_each_other() -> None:
    names = service_names()
    assert names, "no services found"
    for service in names:
        for path in (ROOT / "services" / service).rglob("*.py"):
            for imported in imports_of(path):
                parts = imported.split(".")
                if parts[0] == "services" and len(parts) > 1:
                    assert parts[1] == service, f"{path} imports {imported}"


def test_domain_modules_import_no_framework() -> None:
    for service in service_names():
        for path in (ROOT / "services" / service / "domain").rglob("*.py"):
            for imported in imports_of(path):
                assert imported.split(".")[0] not in FRAMEWORKS, f"{path} imports {imported}"
