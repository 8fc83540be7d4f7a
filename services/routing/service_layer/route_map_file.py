"""Route maps for many gemeenten at once, from a file a coalition coordinator keeps (`kansrijk directory
route-maps FILE`): JSON as the API takes it, or CSV as a spreadsheet exports it. Each version is checked
exactly as `PUT /v1/gemeenten/{code}/route-map` checks it.

JSON: `{"GM0363": {route map} | [{route map}, …], …}`.
CSV (one row per gemeente, version and recipient type; `risk_domains` is `all` or codes separated by `;`,
`note` is true/false, the deadlines are ISO 8601 durations and may be left empty for the defaults):

    gemeente,effective_from,recipient_type,risk_domains,note,regular,urgent
    GM0363,2027-01-01,jgz,all,true,P14D,P2D
    GM0363,2027-01-01,wijkteam,huiselijk-geweld;financien-schulden;huisvesting,false,P14D,P2D

A file with mistakes is refused whole, with every mistake at once, each in words: for CSV the line, the
column and the value as written; for JSON the gemeente, the version and the field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from services.routing.domain.route_map import RouteMap
from services.routing.service_layer.route_map_input import IsoDuration, RouteMapPut
from shared.clock import IsoDate
from shared.contracts.vocabulary import RECIPIENT_TYPES, RiskDomain
from shared.identifiers import validate_gemeente_code

CSV_COLUMNS = ("gemeente", "effective_from", "recipient_type", "risk_domains", "note", "regular", "urgent")
REQUIRED_COLUMNS = CSV_COLUMNS[:5]
RISK_DOMAINS: tuple[str, ...] = get_args(RiskDomain)
NOTE_WORDS = {"true": True, "ja": True, "": True, "false": False, "nee": False}
MAX_PROBLEMS = 50  # a file that is wrong everywhere: the first ones say enough

_DATE: TypeAdapter[Any] = TypeAdapter(IsoDate)
_DURATION: TypeAdapter[timedelta] = TypeAdapter(IsoDuration)


@dataclass(frozen=True)
class Problem:
    """One mistake: where (a CSV line and column, or a JSON gemeente and field), the value, what is wrong."""

    where: str
    what: str
    value: object = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f"{_shown(self.value)} "
        return f"{self.where}: {shown}{self.what}"


class RouteMapFileError(ValueError):
    """What is wrong with a route-map file: every problem, saying where (no personal data can be in one)."""

    def __init__(self, name: str, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = [f"  {p}" for p in shown] + ([f"  … and {more} more"] if more > 0 else [])
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"{name}: {count}, nothing loaded\n" + "\n".join(lines))


def read_route_maps(path: Path) -> dict[str, list[RouteMap]]:
    """Every version in the file, per gemeente code, each checked as the API checks it; RouteMapFileError
    with every problem found otherwise."""
    if path.suffix.lower() == ".csv":
        return _from_csv(path)
    return _from_json(path)


# --- JSON -------------------------------------------------------------------------------------------


def _from_json(path: Path) -> dict[str, list[RouteMap]]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RouteMapFileError(path.name, [Problem("the file", "is not UTF-8 text")]) from None
    except ValueError as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "the file"
        what = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise RouteMapFileError(path.name, [Problem(where, f"is not valid JSON ({what})")]) from None
    if not isinstance(loaded, dict):
        raise RouteMapFileError(
            path.name, [Problem("the file", "should be an object of gemeente code -> route map(s)")]
        )
    problems: list[Problem] = []
    out: dict[str, list[RouteMap]] = {}
    for code, value in loaded.items():
        try:
            gemeente = validate_gemeente_code(code)
        except ValueError:
            problems.append(Problem("a key", "is not a gemeente code (GM and 4 digits, e.g. GM0363)", code))
            continue
        for index, document in enumerate(value if isinstance(value, list) else [value], start=1):
            version = document.get("effective_from") if isinstance(document, dict) else None
            label = f"{gemeente}, version {index}" + (f" (from {version})" if isinstance(version, str) else "")
            if not isinstance(document, dict):
                problems.append(Problem(label, "should be a route map (an object)"))
                continue
            try:
                out.setdefault(gemeente, []).append(RouteMapPut.model_validate(document).domain())
            except ValidationError as exc:
                problems += _problems(label, exc)
    if problems:
        raise RouteMapFileError(path.name, problems)
    return out


def _problems(where: str, exc: ValidationError) -> list[Problem]:
    """Pydantic's errors as problems: one per field. A field that takes one of several shapes (`"all"` or a
    list) fails in each; what went wrong inside the shape given is the problem, else that it fits none."""
    by_field: dict[tuple[int | str, ...], list[ErrorDetails]] = {}
    for error in exc.errors():
        loc = error["loc"]
        tag = next((i for i, part in enumerate(loc) if _is_tag(part)), len(loc))
        by_field.setdefault(loc[:tag] if tag < len(loc) else loc, []).append(error)
    problems: list[Problem] = []
    for field, errors in by_field.items():
        mismatches = [e for e in errors if _is_tag(e["loc"][-1]) and _is_mismatch(e)]
        inside = [e for e in errors if e not in mismatches]
        at = f"{where}, {_field(field)}"
        if inside:
            problems += [Problem(at, _in_words(e), _input(e)) for e in inside]
        else:
            shapes = " or ".join(_shape(e) for e in mismatches)
            problems.append(Problem(at, f"should be {shapes}", _input(mismatches[0])))
    return problems


def _is_tag(part: int | str) -> bool:
    """A union member's name in an error's location (e.g. "literal['all']"), not a field."""
    return isinstance(part, str) and "[" in part


def _is_mismatch(error: ErrorDetails) -> bool:
    return error["type"] == "literal_error" or error["type"].endswith("_type")


def _shape(error: ErrorDetails) -> str:
    if error["type"] == "literal_error":
        return str((error.get("ctx") or {}).get("expected", "")).replace("'", '"')
    return "a " + error["type"].removesuffix("_type").replace("_", " ")


def _field(loc: tuple[int | str, ...]) -> str:
    named = [str(part) for part in loc if isinstance(part, str)]  # list positions: the value says which
    return "field " + " → ".join(named) if named else "the route map"


def _input(error: ErrorDetails) -> object:
    value = error.get("input")
    shown = error["type"] not in ("missing", "extra_forbidden") and isinstance(value, str | int | float | bool)
    return value if shown else None


def _in_words(error: ErrorDetails) -> str:
    """A pydantic error as a sentence a coordinator reads (not its type codes)."""
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return "is missing"
    if kind == "extra_forbidden":
        return "is not a field of a route map"
    if kind == "literal_error":
        expected = str((error.get("ctx") or {}).get("expected", "")).replace("'", "")
        return f"is not one of: {expected}"
    if kind == "too_short":
        return "should not be empty"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


# --- CSV --------------------------------------------------------------------------------------------


@dataclass
class _Version:
    """One gemeente's version as its rows build it up, with the lines it came from."""

    effective_from: str
    recipients: dict[str, dict[str, Any]]
    deadlines: dict[str, tuple[str, int]]  # urgency -> (value, line)
    type_lines: dict[str, int]

    def document(self) -> dict[str, Any]:
        return {
            "effective_from": self.effective_from,
            "recipients": self.recipients,
            "contact_deadline": {urgency: value for urgency, (value, _) in self.deadlines.items()},
        }


def _from_csv(path: Path) -> dict[str, list[RouteMap]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise RouteMapFileError(path.name, [Problem("the file", "is not UTF-8 text")]) from None
    except csv.Error as exc:
        raise RouteMapFileError(path.name, [Problem("the file", f"is not readable as CSV ({exc})")]) from None
    if not rows:
        raise RouteMapFileError(path.name, [Problem("line 1", f"should be the header: {','.join(CSV_COLUMNS)}")])
    header = [name.strip() for name in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        what = f"lacks the column{plural} {', '.join(missing)} (expected: {','.join(CSV_COLUMNS)})"
        raise RouteMapFileError(path.name, [Problem("line 1 (the header)", what)])
    problems: list[Problem] = []
    versions: dict[tuple[str, str], _Version] = {}
    for line, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line (spreadsheets leave them)
        if len(cells) > len(header):
            problems.append(Problem(f"line {line}", f"has {len(cells)} cells, the header {len(header)}"))
            continue
        row = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        problems += _csv_row(line, row, versions)
    if not problems:
        out = _checked_versions(versions, problems)
        if not problems:
            return out
    raise RouteMapFileError(path.name, problems)


def _csv_row(line: int, row: dict[str, str], versions: dict[tuple[str, str], _Version]) -> list[Problem]:
    """Check one row's cells, each on its own; a good row joins its version."""

    def at(column: str) -> str:
        return f"line {line}, column {column}"

    problems: list[Problem] = []
    gemeente = row["gemeente"]
    try:
        gemeente = validate_gemeente_code(gemeente)
    except ValueError:
        problems.append(_bad(at("gemeente"), "is not a gemeente code (GM and 4 digits, e.g. GM0363)", gemeente))
    effective_from = row["effective_from"]
    try:
        _DATE.validate_python(effective_from)
    except ValidationError:
        problems.append(_bad(at("effective_from"), "is not a day as YYYY-MM-DD", effective_from))
    recipient_type = row["recipient_type"]
    if recipient_type not in RECIPIENT_TYPES:
        what = f"is not a recipient type ({' or '.join(RECIPIENT_TYPES)})"
        problems.append(_bad(at("recipient_type"), what, recipient_type))
    domains = _risk_domains(row["risk_domains"], at("risk_domains"), problems)
    note = NOTE_WORDS.get(row["note"].lower())
    if note is None:
        problems.append(Problem(at("note"), "is not true or false (or ja/nee, empty: true)", row["note"]))
    deadlines: dict[str, str] = {}
    for urgency in ("regular", "urgent"):
        value = row.get(urgency, "")
        if not value:
            continue
        try:
            _DURATION.validate_python(value)
            deadlines[urgency] = value
        except ValidationError as exc:
            problems.append(Problem(at(urgency), _in_words(exc.errors()[0]), value))
    if problems or domains is None or note is None:
        return problems

    version = versions.setdefault((gemeente, effective_from), _Version(effective_from, {}, {}, {}))
    if recipient_type in version.type_lines:
        first = version.type_lines[recipient_type]
        return [
            Problem(
                at("recipient_type"),
                f"appears a second time for {gemeente} from {effective_from} (first on line {first})",
                recipient_type,
            )
        ]
    version.type_lines[recipient_type] = line
    version.recipients[recipient_type] = {"risk_domains": domains, "note": note}
    for urgency, value in deadlines.items():
        earlier = version.deadlines.setdefault(urgency, (value, line))
        if earlier[0] != value:
            problems.append(
                Problem(
                    at(urgency),
                    f"differs from the {urgency} deadline {earlier[0]} on line {earlier[1]} "
                    f"({gemeente} from {effective_from} has one)",
                    value,
                )
            )
    return problems


def _risk_domains(cell: str, where: str, problems: list[Problem]) -> str | list[str] | None:
    if cell == "all":
        return "all"
    codes = [code.strip() for code in cell.split(";") if code.strip()]
    if not codes:
        problems.append(Problem(where, "is empty: `all`, or risk domain codes separated by `;`"))
        return None
    found = len(problems)
    for code in codes:
        if code not in RISK_DOMAINS:
            problems.append(Problem(where, f"is not a risk domain (known: {', '.join(RISK_DOMAINS)})", code))
    for code in sorted({c for c in codes if codes.count(c) > 1}):
        problems.append(Problem(where, "appears more than once", code))
    return codes if len(problems) == found else None


def _bad(where: str, what: str, value: str) -> Problem:
    return Problem(where, what, value) if value else Problem(where, "is empty")


def _checked_versions(versions: dict[tuple[str, str], _Version], problems: list[Problem]) -> dict[str, list[RouteMap]]:
    """Each assembled version as the API checks it (what spans rows); a problem names the version's lines."""
    out: dict[str, list[RouteMap]] = {}
    for (gemeente, effective_from), version in versions.items():
        try:
            out.setdefault(gemeente, []).append(RouteMapPut.model_validate(version.document()).domain())
        except ValidationError as exc:
            lines = ", ".join(str(n) for n in sorted(version.type_lines.values()))
            where = f"lines {lines} ({gemeente} from {effective_from})"
            problems += _problems(where, exc)
    return out


def _shown(value: object) -> str:
    text = str(value)
    return json.dumps(text[:60] + ("…" if len(text) > 60 else ""), ensure_ascii=False)
