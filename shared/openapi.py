"""Each service's OpenAPI document as an integrator reads it: scopes, problem responses, examples.

FastAPI writes a good document; this completes it where the framework cannot know our conventions:
- every operation names the scope its token needs (`x-required-scope`, read from the route's own
  dependencies: the authorisation-matrix test holds every /v1/ route to it);
- errors are `application/problem+json` with the `Problem` schema, FastAPI's `HTTPValidationError`
  included (our 422 is a problem with an `errors` list), and an operation that takes a body also
  answers 413 and 415;
- every success response carries the example of its schema, so `/docs` shows a realistic answer.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from shared.auth import required_scopes
from shared.problems import PROBLEM_MEDIA_TYPE, STATUS_BY_SLUG, problem_example

PROBLEM_REF = "#/components/schemas/Problem"
FRAMEWORK_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Replace the app's `openapi()` by one that completes FastAPI's document once and caches it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _name_scopes(app, schema)
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    _complete_operation(operation, schema)
            for name in FRAMEWORK_SCHEMAS:
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _name_scopes(app: FastAPI, schema: dict[str, Any]) -> None:
    for router in app.state.routers:
        for route in router.routes:
            scopes = required_scopes(route.dependant) if isinstance(route, APIRoute) else set()
            if isinstance(route, APIRoute) and route.include_in_schema and scopes:
                for method in route.methods or ():
                    operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
                    if operation is not None:
                        operation["x-required-scope"] = " ".join(sorted(scopes))


def _complete_operation(operation: dict[str, Any], schema: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    _name_scope_in_forbidden(operation.get("x-required-scope"), responses)
    if "requestBody" in operation:
        for slug in ("payload-too-large", "unsupported-media-type"):
            responses.setdefault(str(STATUS_BY_SLUG[slug]), _problem_response(slug))
    for status, response in responses.items():
        content = response.get("content", {})
        if status[:1] in "45":
            _as_problem(status, response, content)
        elif status[:1] == "2":
            for media in content.values():
                if "example" not in media and "examples" not in media:
                    media["example"] = _example_of(media.get("schema", {}), schema)
                if media.get("example") is not None:
                    media["example"] = _restore_nulls(media["example"], media.get("schema", {}), schema)
                else:
                    media.pop("example", None)


def _name_scope_in_forbidden(scope: str | None, responses: dict[str, Any]) -> None:
    """The 403 example says what the service answers on this operation: the scope *it* needs."""
    examples = responses.get("403", {}).get("content", {}).get(PROBLEM_MEDIA_TYPE, {}).get("examples", {})
    forbidden = examples.get("forbidden")
    if scope and " " not in scope and forbidden is not None:
        forbidden["value"] = {**forbidden["value"], "detail": f"this action needs the scope {scope}"}


def _as_problem(status: str, response: dict[str, Any], content: dict[str, Any]) -> None:
    """Errors are sent as problem+json with the Problem schema, whatever FastAPI filed them under."""
    plain = content.pop("application/json", None)
    if PROBLEM_MEDIA_TYPE in content:
        content[PROBLEM_MEDIA_TYPE]["schema"] = {"$ref": PROBLEM_REF}
        return
    if plain is not None and status == "422":  # FastAPI's own HTTPValidationError
        response.update(_problem_response("validation"))


def _problem_response(slug: str) -> dict[str, Any]:
    return {
        "description": f"problem: {slug}",
        "content": {
            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}, "examples": {slug: {"value": problem_example(slug)}}}
        },
    }


def _example_of(node: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The first example of a schema (following `$ref`, or the first alternative that has one)."""
    if "$ref" in node:
        component = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        return _example_of(component, schema)
    if node.get("examples"):
        return copy.deepcopy(node["examples"][0])
    if "example" in node:
        return copy.deepcopy(node["example"])
    for alternative in (*node.get("anyOf", []), *node.get("oneOf", [])):
        found = _example_of(alternative, schema)
        if found is not None:
            return found
    if node.get("type") == "array" and "items" in node:
        item = _example_of(node["items"], schema)
        return [item] if item is not None else None
    if node.get("type") == "object" and node.get("properties"):
        return _composed(node, schema)
    return None


def _composed(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    """An object's example from its properties' (a page: its items' example and `next_cursor: null`)."""
    out: dict[str, Any] = {}
    for name, prop in node["properties"].items():
        example = _example_of(prop, schema)
        if example is None and "default" in prop:
            example = prop["default"]
        elif example is None and not any(alt.get("type") == "null" for alt in prop.get("anyOf", [])):
            return None  # a required value nobody gave an example for: no example rather than a wrong one
        out[name] = example
    return out


def _restore_nulls(example: Any, node: dict[str, Any], schema: dict[str, Any]) -> Any:
    """FastAPI writes the document without null values, the examples' included: a required field that is
    null in the example (`withdrawn_at` of an active consent) is put back, so the example fits its schema."""
    if "$ref" in node:
        return _restore_nulls(example, schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]], schema)
    if isinstance(example, list) and "items" in node:
        return [_restore_nulls(item, node["items"], schema) for item in example]
    if isinstance(example, dict):
        for alternative in (*node.get("anyOf", []), *node.get("oneOf", [])):
            if alternative.get("type") != "null":
                example = _restore_nulls(example, alternative, schema)
        for name, prop in node.get("properties", {}).items():
            if name in example:
                example[name] = _restore_nulls(example[name], prop, schema)
            elif name in node.get("required", []) and any(a.get("type") == "null" for a in prop.get("anyOf", [])):
                example[name] = None
    return example
