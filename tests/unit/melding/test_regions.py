"""The GGD regions the melding service ships (services/melding/reference_data/, SOURCES.md there) and their
rules (services/melding/domain/regions.py)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from services.melding.adapters.regions import SHIPPED_REGIONS, read_regions, shipped_regions
from services.melding.domain.regions import Regions

ROUTING_GEMEENTEN = Path(__file__).resolve().parents[3] / "services/routing/reference_data/gemeenten.csv"


def test_the_shipped_edition_holds_every_gemeente_of_routings_edition_in_one_of_25_regions() -> None:
    regions = shipped_regions()
    assert len(regions.by_code) == 25 and all(re.fullmatch(r"GG[0-9]{4}", code) for code in regions.by_code)
    with ROUTING_GEMEENTEN.open(encoding="utf-8") as file:
        routing = {row["code"]: row["name"] for row in csv.DictReader(file)}
    assert dict(regions.gemeente_names) == routing  # the same 342 codes, name for name
    assert sorted(regions.region_of) == sorted(routing)
    assert sum(len(region.gemeenten) for region in regions.by_code.values()) == 342
    amsterdam = regions.by_code["GG3406"]
    assert amsterdam.name == "GGD Amsterdam" and "GM0363" in amsterdam.gemeenten and "GM0437" in amsterdam.gemeenten
    assert regions.region_of["GM0518"] == "GG7014" and regions.by_code["GG7014"].name == "GGD Haaglanden"


def test_a_gemeente_split_over_regions_counts_in_the_one_with_most_of_its_addresses() -> None:
    with SHIPPED_REGIONS.open(encoding="utf-8") as file:
        split = {row["gemeente_code"]: float(row["ggd_address_share"]) for row in csv.DictReader(file)}
    assert {code for code, share in split.items() if share < 1} == {
        "GM0050", "GM0166", "GM0184", "GM0363", "GM0537", "GM0613", "GM0797", "GM1700"
    }  # fmt: skip
    assert min(split.values()) > 0.5  # the region named is the majority's


def test_a_gemeente_twice_or_a_region_with_two_names_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="twice"):
        Regions.from_rows([("GM0001", "A", "GG0001", "R"), ("GM0001", "A", "GG0002", "S")])
    with pytest.raises(ValueError, match="two names"):
        Regions.from_rows([("GM0001", "A", "GG0001", "R"), ("GM0002", "B", "GG0001", "S")])
    edition = tmp_path / "gemeente_regio.csv"
    edition.write_text(
        "gemeente_code,gemeente_name,ggd_code,ggd_region,ggd_address_share\nGM0002,B,GG0001,R,1.000\n"
        "GM0001,A,GG0001,R,0.900\n",
        encoding="utf-8",
    )
    regions = read_regions(edition)
    assert regions.by_code["GG0001"].gemeenten == ("GM0001", "GM0002") and regions.region_of["GM0002"] == "GG0001"
