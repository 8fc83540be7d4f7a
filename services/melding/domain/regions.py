"""GGD regions: the level between the gemeente and the country in the programme figures. No I/O here (the
melding service's reference data, `reference_data/gemeente_regio.csv`, is read by `adapters/regions.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Region:
    """A GGD region (CBS code `GG` and four digits) and the gemeenten it holds, by code."""

    code: str
    name: str
    gemeenten: tuple[str, ...]


@dataclass(frozen=True)
class Regions:
    """Every GGD region, and the region of each gemeente (a gemeente lies in one, or in none the reference
    data knows: one that merged away before its edition)."""

    by_code: Mapping[str, Region]
    gemeente_names: Mapping[str, str]  # CBS

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str, str]]) -> Regions:
        """From `(gemeente code, gemeente name, region code, region name)` rows; ValueError when a gemeente is
        named twice or a region has two names."""
        names: dict[str, str] = {}
        members: dict[str, list[str]] = {}
        gemeenten: dict[str, str] = {}
        for gemeente, gemeente_name, region, region_name in rows:
            if gemeente in gemeenten:
                raise ValueError(f"gemeente {gemeente} is listed twice")
            if names.setdefault(region, region_name) != region_name:
                raise ValueError(f"region {region} has two names: {names[region]!r} and {region_name!r}")
            gemeenten[gemeente] = gemeente_name
            members.setdefault(region, []).append(gemeente)
        by_code = {code: Region(code, names[code], tuple(sorted(members[code]))) for code in sorted(names)}
        return cls(by_code, gemeenten)

    @cached_property
    def region_of(self) -> dict[str, str]:
        """Each gemeente's region code."""
        return {gemeente: region.code for region in self.by_code.values() for gemeente in region.gemeenten}


NO_REGIONS = Regions({}, {})
