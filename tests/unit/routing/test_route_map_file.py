"""Route-map files (`kansrijk directory route-maps FILE`): what is wrong is said in words, where it is, all at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.routing.service_layer.route_map_file import RouteMapFileError, read_route_maps

HEADER = "gemeente,effective_from,recipient_type,risk_domains,note,regular,urgent\n"


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "route_maps.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def _refused(path: Path) -> tuple[str, list[str]]:
    with pytest.raises(RouteMapFileError) as caught:
        read_route_maps(path)
    return str(caught.value), [str(p) for p in caught.value.problems]


def test_a_good_csv_file_gives_its_versions(tmp_path: Path) -> None:
    maps = read_route_maps(
        _csv(
            tmp_path,
            "gm0363,2027-01-01,jgz,all,true,P14D,P2D\n"
            "GM0363,2027-01-01,wijkteam,huisvesting;financien-schulden,nee,,\n"
            "\n"
            "GM0599,2027-01-01,jgz,all,,PT48H,\n",
        )
    )
    assert set(maps) == {"GM0363", "GM0599"}
    amsterdam = maps["GM0363"][0]
    wijkteam = amsterdam.rule_for("wijkteam")
    assert wijkteam is not None and wijkteam.note is False
    assert wijkteam.risk_domains == frozenset({"huisvesting", "financien-schulden"})
    assert maps["GM0599"][0].contact_deadline["regular"] == timedelta(hours=48)


def test_every_bad_cell_is_named_by_line_column_and_value_at_once(tmp_path: Path) -> None:
    message, problems = _refused(
        _csv(
            tmp_path,
            "GM0363,2027-01-01,jgz,all,true,P14D,P2D\n"
            "GM036,2027-13-01,jeugdzorg,verslaving;astrologie,misschien,14 dagen,P0D\n"
            "GM0599,2027-01-01,wijkteam,,true,,\n",
        )
    )
    assert problems == [
        'line 3, column gemeente: "GM036" is not a gemeente code (GM and 4 digits, e.g. GM0363)',
        'line 3, column effective_from: "2027-13-01" is not a day as YYYY-MM-DD',
        'line 3, column recipient_type: "jeugdzorg" is not a recipient type (jgz or wijkteam)',
        'line 3, column risk_domains: "astrologie" is not a risk domain (known: verslaving, psychiatrie, lvb, '
        "medisch-obstetrisch, huiselijk-geweld, financien-schulden, huisvesting, sociaal-netwerk, "
        "opvoeding-eerdere-kinderen, jong-ouderschap, ongeplande-zwangerschap, overig)",
        'line 3, column note: "misschien" is not true or false (or ja/nee, empty: true)',
        'line 3, column regular: "14 dagen" must be an ISO 8601 duration in weeks, days, hours, minutes or '
        "seconds (e.g. P14D, PT4H)",
        'line 3, column urgent: "P0D" must be longer than zero',
        "line 4, column risk_domains: is empty: `all`, or risk domain codes separated by `;`",
    ]
    assert message.startswith("route_maps.csv: 8 problems, nothing loaded\n")
    for raw in ("literal_error", "Input should be", "validation error", "type=", "loc"):  # no pydantic dump
        assert raw not in message


def test_what_spans_rows_names_both_lines(tmp_path: Path) -> None:
    _, problems = _refused(
        _csv(
            tmp_path,
            "GM0363,2027-01-01,jgz,all,true,P14D,P2D\n"
            "GM0363,2027-01-01,wijkteam,huisvesting;huisvesting,false,P10D,P2D\n"
            "GM0363,2027-01-01,jgz,verslaving,true,P14D,P2D\n",
        )
    )
    assert problems == [
        'line 3, column risk_domains: "huisvesting" appears more than once',
        'line 4, column recipient_type: "jgz" appears a second time for GM0363 from 2027-01-01 (first on line 2)',
    ]
    _, problems = _refused(
        _csv(tmp_path, "GM0363,2027-01-01,jgz,all,true,P14D,P2D\nGM0363,2027-01-01,wijkteam,overig,false,P10D,P2D\n")
    )
    assert problems == [
        'line 3, column regular: "P10D" differs from the regular deadline P14D on line 2 (GM0363 from 2027-01-01 '
        "has one)"
    ]


def test_a_header_without_a_required_column_and_a_row_too_long_are_said(tmp_path: Path) -> None:
    _, problems = _refused(
        _csv(tmp_path, "GM0363,2027-01-01,jgz,all\n", header="gemeente,effective_from,type,risk_domains\n")
    )
    assert problems == [
        "line 1 (the header): lacks the columns recipient_type, note "
        "(expected: gemeente,effective_from,recipient_type,risk_domains,note,regular,urgent)"
    ]
    _, problems = _refused(_csv(tmp_path, "GM0363,2027-01-01,jgz,all,true,P14D,P2D,extra\n"))
    assert problems == ["line 2: has 8 cells, the header 7"]


def test_a_json_file_names_gemeente_version_and_field_for_every_mistake(tmp_path: Path) -> None:
    path = tmp_path / "route_maps.json"
    path.write_text(
        '{"GM0344": {"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": "all"}}},'
        ' "GM0855": [{"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": ["astrologie"]}}},'
        ' {"recipients": {"wijkteam": {"risk_domains": "all", "notitie": true}}}],'
        ' "Utrecht": {}}',
        encoding="utf-8",
    )
    message, problems = _refused(path)
    assert problems == [
        'GM0855, version 1 (from 2026-01-01), field recipients → jgz → risk_domains: "astrologie" is not one of: '
        "verslaving, psychiatrie, lvb, medisch-obstetrisch, huiselijk-geweld, financien-schulden, huisvesting, "
        "sociaal-netwerk, opvoeding-eerdere-kinderen, jong-ouderschap, ongeplande-zwangerschap or overig",
        "GM0855, version 2, field effective_from: is missing",
        "GM0855, version 2, field recipients → wijkteam → notitie: is not a field of a route map",
        'a key: "Utrecht" is not a gemeente code (GM and 4 digits, e.g. GM0363)',
    ]
    assert message.startswith("route_maps.json: 4 problems, nothing loaded\n")
    assert "Input should be" not in message and "literal_error" not in message


def test_a_field_of_either_shape_says_what_it_should_be(tmp_path: Path) -> None:
    path = tmp_path / "route_maps.json"
    path.write_text(
        '{"GM0363": {"effective_from": "2026-01-01", "recipients": {"jgz": {"risk_domains": "none"}, '
        '"jeugdzorg": {"risk_domains": []}}}}',
        encoding="utf-8",
    )
    _, problems = _refused(path)
    assert problems == [
        'GM0363, version 1 (from 2026-01-01), field recipients → jgz → risk_domains: "none" should be "all" or a list',
        'GM0363, version 1 (from 2026-01-01), field recipients → jeugdzorg: "jeugdzorg" should be "jgz" or "wijkteam"',
        "GM0363, version 1 (from 2026-01-01), field recipients → jeugdzorg → risk_domains: should not be empty",
    ]


def test_a_file_that_is_no_json_says_where_it_breaks(tmp_path: Path) -> None:
    path = tmp_path / "route_maps.json"
    path.write_text('{"GM0363": {\n  "effective_from": "2026-01-01",,\n}}', encoding="utf-8")
    _, problems = _refused(path)
    assert len(problems) == 1 and problems[0].startswith("line 2, column 34: is not valid JSON")
