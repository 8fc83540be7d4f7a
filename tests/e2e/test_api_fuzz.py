"""Schemathesis against each service's own OpenAPI document, over real HTTP to the running system.

For every operation, requests generated from the document (valid ones and deliberately invalid ones)
must never get a 5xx, and every answer must be one the document declares: its status code, content type,
headers and body schema. Two phases: schemathesis's coverage phase (every declared constraint at and
beyond its boundary, once each) and hypothesis generation, a bounded number of examples per operation
and mode (`KANSRIJK_FUZZ_EXAMPLES`, 15 by default; CI runs more, on PostgreSQL, where the edge cases
that only PostgreSQL refuses live).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tests.e2e.flow import SENDER, org_type_for, put_gemeente
from tests.support import Tokens

EXAMPLES = int(os.environ.get("KANSRIJK_FUZZ_EXAMPLES", "15"))
ALWAYS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CHECKS = {GenerationMode.POSITIVE: ALWAYS, GenerationMode.NEGATIVE: [*ALWAYS, negative_data_rejection]}


def _headers_for(operation: Any, tokens: Tokens) -> dict[str, str]:
    """A token of the kind of organisation the operation is for, with exactly its scope."""
    scope = operation.definition.raw["x-required-scope"]
    org_type = org_type_for(scope)
    if org_type == "patient":  # her own view: a token bound to a keyed BSN, as the portal makes them
        return tokens.bearer(
            org_id="patient", org_type="patient", scopes=scope, sub=hashlib.sha256(b"fuzz").hexdigest()
        )
    org_id = {"verloskundige": SENDER, "jgz": "20000002", "operator": "ops", "service": "kansrijk-test"}[org_type]
    return tokens.bearer(org_id=org_id, org_type=org_type, scopes=scope)


def _fuzz(spec: dict[str, Any], base_url: str, tokens: Tokens) -> list[str]:
    """Run every /v1/ operation in both generation modes; the failures, one line each (no personal data:
    the generated values are random)."""
    schema = schemathesis.openapi.from_dict(spec)
    # Every request carries the token of `_headers_for` (a mutated or missing Authorization header would be put back
    # by it), and the APIs ignore query parameters they do not know, as HTTP APIs do: a negative case whose only
    # invalid part is one of those two is a valid request, so neither is generated.
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"an operation the fuzzer cannot read: {result.err()}"
        operation = result.ok()
        if not operation.path.startswith("/v1/"):
            continue
        headers = _headers_for(operation, tokens)
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case: schemathesis.Case[Any]) -> None:
                # `exercise` runs at once, inside this iteration of the loop: the loop variables are its own
                case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS[mode], timeout=15)  # noqa: B023

            try:
                exercise()
            except Unsatisfiable:
                # Nothing of the operation can be made invalid but the two parts left out above (no parameters,
                # no body): there is no negative case to send. A positive run never ends here.
                if mode is not GenerationMode.NEGATIVE:
                    raise
            except (AssertionError, FailureGroup) as failure:  # collected: one run reports every operation
                failures.append(f"{operation.label} ({mode.value}): {str(failure)[:2000]}")
        failures += _cover(schema, operation, base_url, headers)
    return failures


def _cover(schema: Any, operation: Any, base_url: str, headers: dict[str, str]) -> list[str]:
    """Schemathesis's coverage phase: the boundaries of every constraint the document declares (lengths,
    patterns, enums, missing and extra fields, wrong types), each sent once, valid and invalid alike."""
    failures: list[str] = []
    config = schema.config.generation_for(operation=operation)
    for case in schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode), generation_config=config):
        mode = case._meta.generation.mode if case._meta is not None else GenerationMode.POSITIVE
        try:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS[mode], timeout=15)
        except (AssertionError, FailureGroup) as failure:
            failures.append(f"{operation.label} (coverage, {mode.value}): {str(failure)[:2000]}")
    return failures


async def test_generated_requests_never_get_a_5xx_nor_an_answer_outside_the_documented_schema(
    system: dict[str, httpx.AsyncClient], tokens: Tokens
) -> None:
    # Something to route to, so that generated meldingen and route look-ups take their full paths.
    await put_gemeente(system, tokens, "GM0363", "Amsterdam", [("1011", "1109")])
    failures: list[str] = []
    operations = 0
    for service, client in system.items():
        spec = (await client.get("/openapi.json")).json()
        operations += sum(len(item) for path, item in spec["paths"].items() if path.startswith("/v1/"))
        # Blocking HTTP in a thread: the servers run on this event loop and must keep serving.
        failures += [
            f"{service}: {line}" for line in await asyncio.to_thread(_fuzz, spec, str(client.base_url), tokens)
        ]
    assert operations >= 25, f"only {operations} operations found: the fuzzing proves little"
    assert not failures, "\n".join(failures)
