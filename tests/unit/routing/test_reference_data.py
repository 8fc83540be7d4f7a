"""The CBS reference data the routing service ships (services/routing/reference_data/)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from services.routing.service_layer.directory import (
    SHIPPED_GEMEENTEN,
    SHIPPED_POSTCODES,
    cbs_edition,
    read_cbs_files,
)

ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_cbs_files_are_inside_the_package_the_wheel_carries() -> None:
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]["build"]
    packages = wheel["targets"]["wheel"]["packages"]
    for shipped in (SHIPPED_GEMEENTEN, SHIPPED_POSTCODES, SHIPPED_GEMEENTEN.with_name("SOURCES.md")):
        assert shipped.is_file(), shipped
        assert shipped.resolve().relative_to(ROOT).parts[0] in packages, shipped


def test_the_shipped_edition_is_named_by_its_sources_and_holds_every_gemeente() -> None:
    assert cbs_edition(SHIPPED_GEMEENTEN) == "Wijk- en Buurtkaart 2025"
    names, areas = read_cbs_files(SHIPPED_GEMEENTEN, SHIPPED_POSTCODES)
    assert len(names) == 342 and len({area["pc4"] for area in areas}) == 4072
    assert names["GM0363"] == "Amsterdam" and names["GM1992"] == "Voorne aan Zee"
    sources = SHIPPED_GEMEENTEN.with_name("SOURCES.md").read_text(encoding="utf-8")
    assert "Bron: CBS" in sources and "CC BY 4.0" in sources
