"""The GGD regions the melding service ships (`reference_data/gemeente_regio.csv`, CBS; SOURCES.md beside it
says which edition), read once."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from services.melding.domain.regions import Regions

SHIPPED_REGIONS = Path(__file__).resolve().parents[1] / "reference_data" / "gemeente_regio.csv"


def read_regions(path: Path) -> Regions:
    """The regions of a file in the format of the shipped one; ValueError when it does not hold together."""
    with path.open(encoding="utf-8", newline="") as file:
        rows = [
            (row["gemeente_code"], row["gemeente_name"], row["ggd_code"], row["ggd_region"])
            for row in csv.DictReader(file)
        ]
    return Regions.from_rows(rows)


@cache
def shipped_regions() -> Regions:
    """The shipped edition (read on first use, then kept)."""
    return read_regions(SHIPPED_REGIONS)
