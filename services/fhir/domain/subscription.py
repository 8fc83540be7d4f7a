"""Subscriptions (R4 Subscriptions Backport, rest-hook, id-only): what a sender may subscribe to — its own
organisation's Tasks — and the notification Bundles the facade POSTs to its endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import Any
from urllib.parse import parse_qsl

from services.fhir.domain import codes
from services.fhir.domain.endpoint import EndpointPolicy, EndpointRefused, HeaderRefused, check_endpoint, parse_headers
from services.fhir.domain.outcome import FhirError, invalid
from services.fhir.domain.resources import emit, instant, parse

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
SUBSCRIPTION_PROFILE = f"{BACKPORT}/backport-subscription"
STATUS_PROFILE = f"{BACKPORT}/backport-subscription-status-r4"
HEARTBEAT_EXTENSION = f"{BACKPORT}/backport-heartbeat-period"
CONTENT_EXTENSION = f"{BACKPORT}/backport-payload-content"
TOPIC = "urn:kansrijk:topic:task-status"  # every status change of the subscriber's Tasks
MAX_HEADERS = 5
MAX_ENDPOINT = 2000  # the column's length
MAX_HEADER = 1000
MIN_HEARTBEAT = 60  # seconds: a heartbeat more often than this is a load on the endpoint, not a sign of life
FIRST_RETRY = timedelta(seconds=1)
LONGEST_WAIT = timedelta(minutes=10)


@dataclass(frozen=True)
class SubscriptionRequest:
    endpoint: str
    headers: list[str]
    heartbeat_seconds: int | None
    reason: str


def subscription_request(
    data: Any, org_id: str, *, endpoints: EndpointPolicy, min_heartbeat: int = MIN_HEARTBEAT
) -> SubscriptionRequest:
    """A Subscription to make for the caller's organisation `org_id`, or a 422 (403 for another's Tasks)."""
    subscription = parse(data, "Subscription")
    if subscription.status not in ("requested", "active"):
        raise invalid("a new Subscription has status requested", "Subscription.status", code="value")
    if subscription.end is not None:
        raise invalid(
            "Subscription.end is not supported: delete it when done", "Subscription.end", code="not-supported"
        )
    _own_tasks(subscription.criteria or "", org_id)
    if not subscription.reason:  # required by FHIR; fhir.resources' models leave that to the reader
        raise invalid("Subscription.reason is required", "Subscription.reason", code="required")
    channel = subscription.channel
    if channel is None or channel.type != "rest-hook":
        raise invalid("only rest-hook channels are supported", "Subscription.channel.type", code="not-supported")
    endpoint = channel.endpoint or ""
    if len(endpoint) > MAX_ENDPOINT:
        raise invalid(
            f"Subscription.channel.endpoint is at most {MAX_ENDPOINT} characters", "Subscription.channel.endpoint"
        )
    try:
        check_endpoint(endpoint, endpoints)
    except EndpointRefused as refused:
        raise invalid(
            f"Subscription.channel.endpoint: {refused}", "Subscription.channel.endpoint", code="value"
        ) from None
    if channel.payload not in (None, codes.FHIR_JSON):
        raise invalid(f"the payload is {codes.FHIR_JSON}", "Subscription.channel.payload", code="not-supported")
    payload_extensions = (channel.payload__ext.extension if channel.payload__ext else None) or []
    contents = [e.valueCode for e in payload_extensions if e.url == CONTENT_EXTENSION]
    if any(c != "id-only" for c in contents):
        raise invalid("notifications are id-only", "Subscription.channel.payload", code="not-supported")
    headers = [str(h) for h in channel.header or []]
    if len(headers) > MAX_HEADERS or any(len(h) > MAX_HEADER for h in headers):
        raise invalid(f"up to {MAX_HEADERS} headers of the form `Name: value`", "Subscription.channel.header")
    try:
        parse_headers(headers)
    except HeaderRefused as refused:
        raise invalid(str(refused), "Subscription.channel.header", code="value") from None
    beats = [e.valueUnsignedInt for e in channel.extension or [] if e.url == HEARTBEAT_EXTENSION]
    if beats and not (beats[0] and beats[0] >= min_heartbeat):
        raise invalid(f"the heartbeat period is at least {min_heartbeat} seconds", "Subscription.channel.extension")
    return SubscriptionRequest(endpoint, headers, int(beats[0]) if beats else None, str(subscription.reason)[:500])


CRITERIA = "Task?requester:identifier=<system>|<your organisation>"
REQUESTER_PARAMETERS = ("requester:identifier", "requester")  # the second: the form of v1.1, still taken


def _own_tasks(criteria: str, org_id: str) -> None:
    """Criteria in FHIR search syntax — the same query a client may run as `GET Task?…` — following the
    caller's own organisation's Tasks."""
    resource, question, query = criteria.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True) if resource == "Task" and question else []
    if len(pairs) != 1 or pairs[0][0] not in REQUESTER_PARAMETERS:
        raise invalid(f"criteria is {CRITERIA}", "Subscription.criteria", code="value")
    system, _, value = pairs[0][1].rpartition("|")
    if system not in (codes.URA_SYSTEM, codes.ORGANISATION_SYSTEM) or not value:
        raise invalid(f"criteria is {CRITERIA}", "Subscription.criteria", code="value")
    if value != org_id:
        raise FhirError(403, "forbidden", "a Subscription follows your own organisation's Tasks only")


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    org_id: str
    endpoint: str
    heartbeat_seconds: int | None
    reason: str
    status: str
    error: str | None
    events: int


def subscription_resource(view: SubscriptionView) -> dict[str, Any]:
    """The Subscription as a client reads it back (its headers are not shown: they may hold secrets)."""
    identifier = codes.organisation_identifier(view.org_id)
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": view.endpoint,
        "payload": codes.FHIR_JSON,
        "_payload": {"extension": [{"url": CONTENT_EXTENSION, "valueCode": "id-only"}]},
    }
    if view.heartbeat_seconds:
        channel["extension"] = [{"url": HEARTBEAT_EXTENSION, "valueUnsignedInt": view.heartbeat_seconds}]
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": view.id,
        "meta": {"profile": [SUBSCRIPTION_PROFILE]},
        "status": view.status,
        "reason": view.reason,
        "criteria": f"Task?requester:identifier={identifier['system']}|{identifier['value']}",
        "channel": channel,
    }
    if view.error:
        resource["error"] = view.error
    return emit(resource)


@dataclass(frozen=True)
class Event:
    number: int
    task_id: str
    at: datetime


def notification_bundle(
    view: SubscriptionView, base: str, events: list[Event], *, now: datetime, heartbeat: bool = False
) -> dict[str, Any]:
    """What the endpoint receives (R4 Backport, id-only): a `history` Bundle whose first entry is the
    SubscriptionStatus (Parameters), then the Task of each event by its URL, to GET with the token."""
    parameters = _status_parameters(view, base, "heartbeat" if heartbeat else "event-notification")
    for event in events:
        parameters.append(
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(event.number)},
                    {"name": "timestamp", "valueInstant": instant(event.at)},
                    {"name": "focus", "valueReference": {"reference": f"{base}/Task/{event.task_id}"}},
                ],
            }
        )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{view.id}",
            "resource": {"resourceType": "Parameters", "meta": {"profile": [STATUS_PROFILE]}, "parameter": parameters},
            "request": {"method": "GET", "url": f"Subscription/{view.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    entries += [
        {
            "fullUrl": f"{base}/Task/{event.task_id}",
            "request": {"method": "PUT", "url": f"Task/{event.task_id}"},
            "response": {"status": "200"},
        }
        for event in events
    ]
    return emit({"resourceType": "Bundle", "type": "history", "timestamp": instant(now), "entry": entries})


def _status_parameters(view: SubscriptionView, base: str, kind: str) -> list[dict[str, Any]]:
    """The SubscriptionStatus (backport-subscription-status-r4) of a Subscription, as Parameters."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{view.id}"}},
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": view.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(view.events)},
    ]
    if kind == "query-status" and view.error:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": view.error}})
    return parameters


def status_bundle(view: SubscriptionView, base: str, *, now: datetime) -> dict[str, Any]:
    """`GET Subscription/{id}/$status` (the R4 Backport's operation): a searchset Bundle holding the
    Subscription's SubscriptionStatus (Parameters, type `query-status`)."""
    parameters = _status_parameters(view, base, "query-status")
    status = {"resourceType": "Parameters", "meta": {"profile": [STATUS_PROFILE]}, "parameter": parameters}
    entry = {"fullUrl": f"urn:uuid:{view.id}", "resource": status, "search": {"mode": "match"}}
    return emit(
        {"resourceType": "Bundle", "type": "searchset", "timestamp": instant(now), "total": 1, "entry": [entry]}
    )


def retry_after(attempts: int) -> timedelta:
    """How long a notification waits after its `attempts`-th failure: 1 s, 2 s, 4 s, … at most 10 minutes."""
    wait: timedelta = FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 20)  # past the cap: no overflow
    return min(wait, LONGEST_WAIT)


def take_turns(due: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(subscription, organisation) pairs with the organisations taking turns — each one's first, then each
    one's second, … — so that one organisation's many come after every other organisation's first."""
    by_organisation: dict[str, list[tuple[str, str]]] = {}
    for item in due:
        by_organisation.setdefault(item[1], []).append(item)
    return [item for turn in zip_longest(*by_organisation.values()) for item in turn if item is not None]


def delivery_error(since: datetime) -> str:
    """What a Subscription in error says: that delivery failed and since when — not how (a refused address,
    a timeout or a refused connection would tell a sender about the network behind the facade)."""
    return f"notifications could not be delivered since {instant(since)}; the endpoint must answer them with 2xx"
