"""Route maps for many gemeenten at once, from a file a coalition coordinator keeps (`kansrijk directory
route-maps FILE`): JSON as the API takes it, or CSV as a spreadsheet exports it. Each version is checked
exactly as `PUT /v1/gemeenten/{code}/route-map` checks it.

JSON: `{"GM0363": {route map} | [{route map}, …], …}`.
CSV (one row per gemeente, version and recipient type; `risk_domains` is `all` or codes separated by `;`,
`note` is true/false, the deadlines are ISO 8601 durations and may be left empty for the defaults):

    gemeente,effective_from,recipient_type,risk_domains,note,regular,urgent
    GM0363,2027-01-01,jgz,all,true,P14D,P2D
    GM0363,2027-01-01,wijkteam,huiselijk-geweld;financien-schulden;huisvesting,false,P14D,P2D
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.routing.api.schemas import RouteMapPut
from services.routing.domain.route_map import RouteMap
from shared.identifiers import validate_gemeente_code

CSV_COLUMNS = ("gemeente", "effective_from", "recipient_type", "risk_domains", "note", "regular", "urgent")


class RouteMapFileError(ValueError):
    """What is wrong with a route-map file, saying where (no personal data can be in one)."""


def read_route_maps(path: Path) -> dict[str, list[RouteMap]]:
    """Every version in the file, per gemeente code, each checked as the API checks it."""
    documents = _csv_documents(path) if path.suffix.lower() == ".csv" else _json_documents(path)
    out: dict[str, list[RouteMap]] = {}
    for code, versions in documents.items():
        try:
            gemeente = validate_gemeente_code(code)
        except ValueError as exc:
            raise RouteMapFileError(f"{code!r} is not a gemeente code (GM + 4 digits): {exc}") from None
        for document in versions:
            try:
                out.setdefault(gemeente, []).append(RouteMapPut.model_validate(document).domain())
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise RouteMapFileError(f"{gemeente} ({document.get('effective_from')}): {problems}") from None
            except AttributeError:
                raise RouteMapFileError(f"{gemeente}: each route map is an object") from None
    return out


def _json_documents(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RouteMapFileError(f"{path.name} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise RouteMapFileError(f"{path.name}: expected an object of gemeente code -> route map(s)")
    return {code: value if isinstance(value, list) else [value] for code, value in loaded.items()}


def _csv_documents(path: Path) -> dict[str, list[dict[str, Any]]]:
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS[:5] if c not in (reader.fieldnames or [])]
        if missing:
            raise RouteMapFileError(f"{path.name}: missing column(s) {', '.join(missing)} ({','.join(CSV_COLUMNS)})")
        for line, row in enumerate(reader, start=2):
            key = (row["gemeente"].strip().upper(), row["effective_from"].strip())
            version = versions.setdefault(key, {"effective_from": key[1], "recipients": {}, "contact_deadline": {}})
            domains = row["risk_domains"].strip()
            note = row["note"].strip().lower()
            if note not in ("true", "false", "ja", "nee", ""):
                raise RouteMapFileError(f"{path.name} line {line}: note is true or false")
            version["recipients"][row["recipient_type"].strip()] = {
                "risk_domains": "all" if domains == "all" else [d.strip() for d in domains.split(";") if d.strip()],
                "note": note in ("true", "ja", ""),
            }
            for urgency in ("regular", "urgent"):
                value = (row.get(urgency) or "").strip()
                if value and version["contact_deadline"].setdefault(urgency, value) != value:
                    raise RouteMapFileError(f"{path.name} line {line}: another {urgency} deadline for this version")
    out: dict[str, list[dict[str, Any]]] = {}
    for (code, _), version in versions.items():
        out.setdefault(code, []).append(version)
    return out
