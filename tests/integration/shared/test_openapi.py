"""`/docs` shows every endpoint with an example request and its error responses (the contract, every service)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support import SERVICES

if TYPE_CHECKING:
    import jsonschema_rs
    from fastapi import FastAPI


def app_for(service: str) -> FastAPI:
    from services.registry import SERVICES as REGISTRY

    app: FastAPI = REGISTRY[service].app_factory()(run_workers=False)
    return app


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


@pytest.mark.parametrize("service", SERVICES)
async def test_every_v1_operation_is_secured_documented_and_has_an_example(service: str) -> None:
    app = app_for(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schemas = spec["components"]["schemas"]
    checked = 0
    for path, method, operation in operations(spec):
        if not path.startswith("/v1/"):
            continue
        checked += 1
        where = f"{method.upper()} {path}"
        assert operation.get("security"), f"{where} declares no bearer security"
        assert operation.get("summary") and operation.get("description"), f"{where} is not described"
        for status in ("401", "403"):
            problem = operation["responses"].get(status, {}).get("content", {}).get("application/problem+json")
            assert problem and problem["schema"]["$ref"].endswith("/Problem"), f"{where}: {status} is not a problem"
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            ref = body["schema"].get("$ref") or next(
                (s["$ref"] for s in body["schema"].get("anyOf", []) if "$ref" in s), None
            )
            assert ref is not None, f"{where}: its request body names no schema"
            schema = schemas[ref.rsplit("/", 1)[1]]
            assert schema.get("examples"), f"{where} has no example request"
            assert "application/problem+json" in operation["responses"]["422"]["content"], f"{where}: no 422 problem"
        if "{" in path and method != "put":  # a PUT creates what it does not find
            assert "404" in operation["responses"], f"{where} addresses a resource but documents no 404"
    assert checked > 0


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> jsonschema_rs.Validator:
    import jsonschema_rs

    return jsonschema_rs.validator_for({**schema, "components": spec["components"]})


@pytest.mark.parametrize("service", SERVICES)
async def test_every_answer_is_documented_with_an_example_that_fits_its_schema(service: str) -> None:
    """What an integrator reads in /docs: a realistic example of every success answer and every problem,
    validation problems with their `errors` list, 404 (never FastAPI's HTTPValidationError) for ids in
    paths, 413 and 415 wherever a body is sent, and the Dutch identifiers' rules as patterns."""
    spec = app_for(service).openapi()
    assert "HTTPValidationError" not in str(spec), "a response still documents FastAPI's own validation error"
    for path, method, operation in operations(spec):
        if not path.startswith("/v1/"):
            continue
        where = f"{method.upper()} {path}"
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                examples = (
                    [content["example"]]
                    if "example" in content
                    else [e["value"] for e in content.get("examples", {}).values()]
                )
                assert examples, f"{where} {status} {media_type} has no example"
                validator = _validator(spec, content["schema"])
                for example in examples:
                    assert validator.is_valid(example), f"{where} {status}: its example does not fit its schema"
                if status[0] in "45":
                    assert media_type == "application/problem+json", f"{where} {status} is not a problem"
        if "requestBody" in operation:
            assert {"413", "415", "422"} <= set(operation["responses"]), f"{where} takes a body: 413/415/422"
            validation = operation["responses"]["422"]["content"]["application/problem+json"]["examples"]
            assert validation["validation"]["value"]["errors"], f"{where}: the 422 example names no field"
        if "{" in path and method != "put":
            assert "404" in operation["responses"], f"{where} addresses a resource but documents no 404"
    schemas = spec["components"]["schemas"]
    text = str(spec)
    assert "^[0-9]{9}$" in text or service == "routing"  # the BSN's form wherever a BSN is sent
    if service == "melding":
        consent_check = str(schemas["MeldingCreate"])
        assert "^([1-9][0-9]{3}) ?([A-Za-z]{2})$" in str(schemas["Address"]) and "elfproef" in str(schemas)
        assert "[0-9a-fA-F]{8}" in consent_check  # the consent id is a UUID
    if service == "routing":
        delivered = schemas["DeliveredDocument"]
        assert delivered.get("additionalProperties") is not True and {"patient", "consent", "status"} <= set(
            delivered["properties"]
        )
        assert "^[Gg][Mm][0-9]{4}$" in str(spec["paths"]["/v1/gemeenten/{code}"])


@pytest.mark.parametrize("service", SERVICES)
async def test_every_403_example_names_the_scope_its_operation_needs(service: str) -> None:
    """An integrator reading the 403 of `GET /v1/unroutable` learns it needs `routing:admin` (what the service
    answers then), not some other endpoint's scope."""
    spec = app_for(service).openapi()
    checked = 0
    for path, method, operation in operations(spec):
        scope = operation.get("x-required-scope")
        forbidden = operation["responses"].get("403", {}).get("content", {}).get("application/problem+json", {})
        example = forbidden.get("examples", {}).get("forbidden", {}).get("value")
        if scope is None or example is None or " " in scope:
            continue
        assert example["detail"] == f"this action needs the scope {scope}", f"{method.upper()} {path}"
        checked += 1
    assert checked > 0
    if service == "routing":
        unroutable = spec["paths"]["/v1/unroutable"]["get"]["responses"]["403"]["content"]["application/problem+json"]
        assert unroutable["examples"]["forbidden"]["value"]["detail"] == "this action needs the scope routing:admin"
