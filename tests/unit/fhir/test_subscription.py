"""Subscriptions without a server: what a sender may subscribe to, and the notification it gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from services.fhir.domain.outcome import FhirError
from services.fhir.domain.subscription import (
    CONTENT_EXTENSION,
    HEARTBEAT_EXTENSION,
    Event,
    SubscriptionView,
    notification_bundle,
    retry_after,
    subscription_request,
    subscription_resource,
)

ORG = "10000001"
TASK = "0b7c8e0e-5a43-4e0a-8d8e-6c1f7d1c2a11"


def subscription(**channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "onze meldingen volgen",
        "criteria": f"Task?requester=http://fhir.nl/fhir/NamingSystem/ura|{ORG}",
        "channel": {"type": "rest-hook", "endpoint": "https://ehr.example.nl/notify", **channel},
    }


def refused(data: dict[str, Any], *, allow_http: bool = False) -> FhirError:
    with pytest.raises(FhirError) as raised:
        subscription_request(data, ORG, allow_http=allow_http)
    return raised.value


def test_a_subscription_to_the_callers_own_tasks_is_taken_with_its_headers_and_heartbeat() -> None:
    taken = subscription_request(
        subscription(
            header=["Authorization: Bearer x"],
            extension=[{"url": HEARTBEAT_EXTENSION, "valueUnsignedInt": 60}],
            payload="application/fhir+json",
            _payload={"extension": [{"url": CONTENT_EXTENSION, "valueCode": "id-only"}]},
        ),
        ORG,
        allow_http=False,
    )
    assert (taken.endpoint, taken.headers, taken.heartbeat_seconds) == (
        "https://ehr.example.nl/notify", ["Authorization: Bearer x"], 60
    )  # fmt: skip


def test_what_a_subscription_may_not_ask_is_refused() -> None:
    other = subscription()
    other["criteria"] = "Task?requester=http://fhir.nl/fhir/NamingSystem/ura|99999999"
    assert refused(other).status == 403
    for criteria in ("Task?status=completed", "Patient?identifier=x", "Task?requester=x|"):
        assert refused({**subscription(), "criteria": criteria}).expression == "Subscription.criteria"
    assert refused(subscription(type="websocket")).code == "not-supported"
    assert refused(subscription(endpoint="http://ehr.example.nl/notify")).expression == "Subscription.channel.endpoint"
    assert subscription_request(subscription(endpoint="http://127.0.0.1:9/n"), ORG, allow_http=True)
    full = subscription(_payload={"extension": [{"url": CONTENT_EXTENSION, "valueCode": "full-resource"}]})
    assert refused(full).code == "not-supported"
    assert refused(subscription(header=["no colon"])).expression == "Subscription.channel.header"
    assert refused(subscription(header=["X-A: 1\r\nX-B: 2"])).expression == "Subscription.channel.header"
    assert refused({**subscription(), "end": "2027-01-01T00:00:00Z"}).code == "not-supported"
    assert refused({**subscription(), "status": "off"}).expression == "Subscription.status"
    assert refused({**subscription(), "reason": None}).expression == "Subscription.reason"
    assert refused({**subscription(), "channel": None}).expression == "Subscription.channel.type"


def test_a_notification_is_a_valid_history_bundle_naming_each_task_by_its_url_only() -> None:
    view = SubscriptionView("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10", ORG, "https://e/n", None, "r", "active", None, 7)
    at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    bundle = notification_bundle(view, "https://api.example.nl/fhir", [Event(6, TASK, at), Event(7, TASK, at)], now=at)
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "history"
    status = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"] if p["name"] != "notification-event"}
    assert status["type"]["valueCode"] == "event-notification"
    assert status["events-since-subscription-start"]["valueString"] == "7"
    assert [e["fullUrl"] for e in bundle["entry"][1:]] == [f"https://api.example.nl/fhir/Task/{TASK}"] * 2
    assert all("resource" not in e for e in bundle["entry"][1:])  # id-only: the Task is fetched with a token
    beat = notification_bundle(view, "https://api.example.nl/fhir", [], now=at, heartbeat=True)
    assert len(beat["entry"]) == 1


def test_a_subscription_reads_back_without_its_headers_and_with_its_error() -> None:
    view = SubscriptionView("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10", ORG, "https://e/n", 30, "r", "error", "HTTP 500", 3)
    resource = subscription_resource(view)
    get_fhir_model_class("Subscription").model_validate(resource)
    assert resource["error"] == "HTTP 500" and "header" not in resource["channel"]
    assert resource["channel"]["extension"][0]["valueUnsignedInt"] == 30


def test_a_failed_notification_waits_longer_each_time_up_to_ten_minutes() -> None:
    waits = [retry_after(n) for n in range(1, 200)]
    assert waits[:4] == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
    # at most ten minutes apart: a day of retries is ~150 attempts, none of them an overflow
    assert max(waits) == timedelta(minutes=10) and waits == sorted(waits)
