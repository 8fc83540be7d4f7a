"""A FHIR-aware fuzz of the facade, over real HTTP to the running system: the examples of docs/fhir.md with
each element removed, repeated and replaced (a coverage phase: once each), then with one to three random
changes (junk of every JSON type, NUL bytes, very long text), and search parameters of every kind, must
never get a 5xx — every refusal is an OperationOutcome that
fhir.resources reads. (Schemathesis covers the v1 APIs from their OpenAPI documents; the facade's bodies
are FHIR resources, which an OpenAPI document does not describe.) `KANSRIJK_FUZZ_EXAMPLES` examples per
interaction, as for schemathesis."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e.flow import SENDER, sender
from tests.fhir_examples import FHIR_JSON, consent_example, example, melding_bundle
from tests.fhir_schema import schema_errors
from tests.support import Tokens

EXAMPLES = int(os.environ.get("KANSRIJK_FUZZ_EXAMPLES", "15"))
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["\x00", "a\x00b", "x" * 5000, "9999-99-99", "2026-13-01T25:00:00Z", "Consent/\x00", "urn:uuid:"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
Path = tuple[str | int, ...]


def _paths(node: Any, prefix: Path = ()) -> list[Path]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "a\x00b", "x" * 5000, "9999-99-99", "2026-13-01T25:00:00Z", "urn:uuid:", "Consent/x",
                     "http://fhir.nl/fhir/NamingSystem/bsn", "123456782", "inactive", "urgent", "jgz"]),
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """`document` with one to three changes: a text replaced by another text (most often: the structure
    still reads, so the change reaches the facade's own rules and the v1 API), a list element repeated,
    an element removed, replaced by junk of any JSON type, or given an unknown sibling."""
    out = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(out)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = out  # a dict or a list, as the path goes
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        action = draw(st.sampled_from(["text", "text", "text", "repeat", "remove", "junk", "unknown"]))
        if action == "text":
            parent[key] = draw(TEXT) if isinstance(parent[key], str) else draw(JUNK)
        elif action == "repeat" and isinstance(parent, list) and isinstance(key, int):
            parent.append(copy.deepcopy(parent[key]))
        elif action == "remove":
            del parent[key]
        elif action == "unknown" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(JUNK)
        else:
            parent[key] = draw(JUNK)
    return out


COVERAGE_VALUES: list[Any] = [None, "", "\x00", "x" * 3000, -1, [], {}]


def single_mutations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every element of `document` removed, repeated (a list's), and replaced by each of COVERAGE_VALUES:
    the coverage phase, once each, before the random combinations."""
    out = []
    for path in _paths(document):
        for change in ("remove", "repeat", *range(len(COVERAGE_VALUES))):
            copied = copy.deepcopy(document)
            parent: Any = copied  # a dict or a list, as the path goes
            for step in path[:-1]:
                parent = parent[step]
            if change == "remove":
                del parent[path[-1]]
            elif change == "repeat":
                last = path[-1]
                if not isinstance(parent, list) or not isinstance(last, int):
                    continue
                parent.append(copy.deepcopy(parent[last]))
            else:
                parent[path[-1]] = COVERAGE_VALUES[int(change)]
            out.append(copied)
    return out


def _answered_without_a_server_error(response: httpx.Response, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", f"{where}: {response.text[:300]}"
        get_fhir_model_class("OperationOutcome").model_validate(outcome)
        assert schema_errors(outcome) == [], f"{where}: {schema_errors(outcome)}"


def _fuzz(base_url: str, tokens: Tokens, consent_id: str, task_id: str) -> list[str]:
    headers = {**sender(tokens), "Content-Type": FHIR_JSON}
    subscription = example("subscription", ura=SENDER, endpoint="http://127.0.0.1:9/notify")
    interactions = [
        ("POST", "/fhir/Consent", consent_example()),
        ("PUT", f"/fhir/Consent/{consent_id}", {**consent_example(), "status": "inactive", "id": consent_id}),
        ("POST", "/fhir", melding_bundle(consent_id)),
        ("POST", f"/fhir/Task/{task_id}/$cancel", example("cancel")),
        ("POST", "/fhir/Subscription", subscription),
    ]
    failures: list[str] = []
    with httpx.Client(base_url=base_url, timeout=20) as client:
        for method, path, document in interactions:

            @given(body=mutated(document))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def exercise(body: dict[str, Any]) -> None:
                content = json.dumps(body)  # the loop variables: `exercise` runs at once, in this iteration
                response = client.request(method, path, content=content, headers=headers)  # noqa: B023
                _answered_without_a_server_error(response, f"{method} {path}")  # noqa: B023

            @given(
                params=st.lists(
                    st.tuples(
                        st.sampled_from(["status", "_lastUpdated", "_count", "_cursor", "requester", "x"]),
                        st.one_of(st.text(max_size=30), st.sampled_from(["gt2026-12-01", "le", "0", "-1", "\x00"])),
                    ),
                    max_size=3,
                )
            )
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
            def search(params: list[tuple[str, str | int | float | bool | None]]) -> None:
                response = client.get("/fhir/Task", params=params, headers=sender(tokens))
                _answered_without_a_server_error(response, "GET /fhir/Task")

            for run in (exercise, search):
                try:
                    run()
                except AssertionError as failure:
                    failures.append(str(failure).splitlines()[0])
            for body in single_mutations(document):
                response = client.request(method, path, content=json.dumps(body), headers=headers)
                try:
                    _answered_without_a_server_error(response, f"{method} {path}")
                except AssertionError as failure:
                    failures.append(str(failure).splitlines()[0])
    return failures


async def test_no_fhir_request_however_malformed_gets_a_server_error(
    system: dict[str, httpx.AsyncClient], tokens: Tokens
) -> None:
    await put_jgz_for_amsterdam(system, tokens)
    made = await system["fhir"].post(
        "/fhir/Consent", content=json.dumps(consent_example()), headers={**sender(tokens), "Content-Type": FHIR_JSON}
    )
    consent_id = made.json()["id"]
    sent = await system["fhir"].post(
        "/fhir",
        content=json.dumps(melding_bundle(consent_id)),
        headers={**sender(tokens), "Content-Type": FHIR_JSON},
    )
    task_id = sent.json()["entry"][3]["response"]["location"].removeprefix("Task/")
    failures = await asyncio.to_thread(_fuzz, str(system["fhir"].base_url), tokens, consent_id, task_id)
    assert not failures, "\n".join(failures)


async def put_jgz_for_amsterdam(system: dict[str, httpx.AsyncClient], tokens: Tokens) -> None:
    from tests.e2e.flow import new_org_id, put_gemeente, put_organisation

    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    await put_organisation(system, tokens, new_org_id(), "jgz", gemeenten=["GM0363"])
