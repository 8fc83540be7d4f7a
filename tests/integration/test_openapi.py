"""`/docs` shows every endpoint with an example request and its error responses (CONTRACT.md, every service)."""

from __future__ import annotations

import httpx
import pytest

from tests.support import SERVICES


def app_for(service: str):  # noqa: ANN201
    from importlib import import_module

    return import_module(f"services.{service}.main").create_app(run_workers=False)


def operations(spec: dict):  # noqa: ANN201
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
            schema = schemas[ref.rsplit("/", 1)[1]]
            assert schema.get("examples"), f"{where} has no example request"
            assert "application/problem+json" in operation["responses"]["422"]["content"], f"{where}: no 422 problem"
        if "{" in path and method != "put":  # a PUT creates what it does not find
            assert "404" in operation["responses"], f"{where} addresses a resource but documents no 404"
    assert checked > 0
