"""Subscriptions without a server: what a sender may subscribe to, and the notification it gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from services.fhir.domain.endpoint import EndpointPolicy
from services.fhir.domain.outcome import FhirError
from services.fhir.domain.search import TaskSearch
from services.fhir.domain.subscription import (
    CONTENT_EXTENSION,
    HEARTBEAT_EXTENSION,
    Event,
    SubscriptionView,
    delivery_error,
    notification_bundle,
    retry_after,
    status_bundle,
    subscription_request,
    subscription_resource,
    take_turns,
)

PRODUCTION, DEVELOPMENT = EndpointPolicy(), EndpointPolicy(development=True)

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


def refused(data: dict[str, Any], *, endpoints: EndpointPolicy = PRODUCTION) -> FhirError:
    with pytest.raises(FhirError) as raised:
        subscription_request(data, ORG, endpoints=endpoints)
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
        endpoints=PRODUCTION,
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
    assert subscription_request(subscription(endpoint="http://127.0.0.1:9/n"), ORG, endpoints=DEVELOPMENT)
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


def test_criteria_are_fhir_search_syntax_with_or_without_the_identifier_modifier() -> None:
    ura = "http://fhir.nl/fhir/NamingSystem/ura"
    for criteria in (
        f"Task?requester:identifier={ura}|{ORG}",
        f"Task?requester={ura}|{ORG}",
        f"Task?requester:identifier={ura}%7C{ORG}",  # as a client URL-encodes it
    ):
        assert subscription_request({**subscription(), "criteria": criteria}, ORG, endpoints=PRODUCTION)
    other = f"Task?requester:identifier={ura}|99999999"
    assert refused({**subscription(), "criteria": other}).status == 403
    for criteria in (
        f"Task?requester:identifier={ura}|{ORG}&status=completed",  # one parameter: the requester
        f"Task?requester:missing={ura}|{ORG}",
        f"ServiceRequest?requester:identifier={ura}|{ORG}",
        f"Task?requester:identifier=urn:other|{ORG}",
    ):
        assert refused({**subscription(), "criteria": criteria}).expression == "Subscription.criteria", criteria
    view = SubscriptionView("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10", ORG, "https://e/n", None, "r", "active", None, 0)
    assert subscription_resource(view)["criteria"] == f"Task?requester:identifier={ura}|{ORG}"


def test_a_heartbeat_more_often_than_the_minimum_is_refused() -> None:
    def beating(seconds: int) -> dict[str, Any]:
        return subscription(extension=[{"url": HEARTBEAT_EXTENSION, "valueUnsignedInt": seconds}])

    for seconds in (1, 59):
        assert refused(beating(seconds)).expression == "Subscription.channel.extension"
    assert subscription_request(beating(60), ORG, endpoints=PRODUCTION).heartbeat_seconds == 60
    assert subscription_request(beating(5), ORG, endpoints=PRODUCTION, min_heartbeat=5).heartbeat_seconds == 5


def test_headers_a_subscription_may_not_set_are_refused_when_it_is_made() -> None:
    for header in (
        "X-A: café",  # not ASCII: it could not be sent
        "X-A: tab\x00nul",
        "X-A: \x7f",
        "Host: intranet.local",
        "content-length: 0",
        "Transfer-Encoding: chunked",
        "Connection: close",
        "Upgrade: h2c",
        "TE: trailers",
        "Trailer: X",
        "COOKIE: session=1",
        "Content-Type: text/plain",
        "X A: spaces in the name",
        ": no name",
    ):
        failed = refused(subscription(header=[header]))
        assert (failed.status, failed.expression) == (422, "Subscription.channel.header"), header
    taken = subscription_request(subscription(header=["Authorization: Bearer a.b-c~d"]), ORG, endpoints=PRODUCTION)
    assert taken.headers == ["Authorization: Bearer a.b-c~d"]


def test_endpoints_on_loopback_or_private_addresses_are_refused_in_production_in_every_spelling() -> None:
    for host in (
        "localhost",
        "localhost.",
        "ehr.localhost",
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "0.0.0.0",
        "0",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "[fe80::1]",
        "[fc00::1]",
        "[fd12:3456::1]",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    ):
        failed = refused(subscription(endpoint=f"https://{host}/notify"))
        assert failed.expression == "Subscription.channel.endpoint", host
    for endpoint in ("https://user:pw@ehr.example.nl/n", "https://ehr.example.nl@127.0.0.1/n", "https://h:0/n"):
        assert refused(subscription(endpoint=endpoint)).expression == "Subscription.channel.endpoint", endpoint
    for endpoint in ("https://ehr.example.nl:8443/n", "https://93.184.215.14/n", "https://[2606:4700::1111]/n"):
        assert subscription_request(subscription(endpoint=endpoint), ORG, endpoints=PRODUCTION)
    # development keeps loopback (the tests' own endpoints), not the private networks
    assert subscription_request(subscription(endpoint="http://localhost:9/n"), ORG, endpoints=DEVELOPMENT)
    assert refused(subscription(endpoint="https://10.0.0.1/n"), endpoints=DEVELOPMENT).status == 422


def test_an_allow_list_of_hosts_limits_where_endpoints_may_be() -> None:
    listed = EndpointPolicy(allowed_hosts=("ehr.example.nl", "*.zorg.example"))
    for endpoint in ("https://ehr.example.nl/n", "https://EHR.example.nl./n", "https://a.b.zorg.example/n"):
        assert subscription_request(subscription(endpoint=endpoint), ORG, endpoints=listed), endpoint
    for endpoint in ("https://other.example.nl/n", "https://zorg.example/n", "https://evilzorg.example/n"):
        assert refused(subscription(endpoint=endpoint), endpoints=listed).status == 422, endpoint


def test_organisations_take_turns_and_a_subscription_in_error_says_since_when_not_how() -> None:
    due = [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("c1", "C"), ("b2", "B")]
    assert take_turns(due) == [("a1", "A"), ("b1", "B"), ("c1", "C"), ("a2", "A"), ("b2", "B"), ("a3", "A")]
    said = delivery_error(datetime(2026, 12, 2, 9, tzinfo=UTC))
    assert "2026-12-02T09:00:00" in said
    assert not any(word in said.lower() for word in ("timeout", "connect", "refused", "address", "http "))


def test_a_subscriptions_criteria_run_as_a_task_search_find_the_callers_own_tasks() -> None:
    from urllib.parse import parse_qsl

    ura = "http://fhir.nl/fhir/NamingSystem/ura"
    task = {
        "status": "received",
        "meta": {"lastUpdated": "2026-12-01T09:00:00Z"},
        "requester": {"identifier": {"system": ura, "value": ORG}},
    }
    for criteria in (f"Task?requester:identifier={ura}|{ORG}", f"Task?requester={ura}%7C{ORG}"):
        assert subscription_request({**subscription(), "criteria": criteria}, ORG, endpoints=PRODUCTION)
        search = TaskSearch.of(parse_qsl(criteria.partition("?")[2]))
        assert search.matches(task)
        assert not search.matches({**task, "requester": {"identifier": {"system": ura, "value": "99999999"}}})
    with pytest.raises(FhirError) as bad:
        TaskSearch.of([("requester:identifier", ORG)])  # no system
    assert bad.value.status == 400


def test_status_is_a_searchset_bundle_with_the_subscription_status_and_its_error() -> None:
    view = SubscriptionView("6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10", ORG, "https://e/n", None, "r", "error", "x", 4)
    bundle = status_bundle(view, "https://api.example.nl/fhir", now=datetime(2026, 12, 2, 9, tzinfo=UTC))
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    status = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert status["type"]["valueCode"] == "query-status" and status["status"]["valueCode"] == "error"
    assert status["events-since-subscription-start"]["valueString"] == "4"
    assert status["error"]["valueCodeableConcept"]["text"] == "x"
