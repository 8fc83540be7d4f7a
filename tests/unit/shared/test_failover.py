"""FailoverConnection moves on through aio-pika's public close_callbacks: once per lost connection, once per
failed attempt (the round trip through a real broker is tests/integration/shared/test_resilience.py's)."""

from __future__ import annotations

from shared.messaging.broker import FailoverConnection

URLS = ["amqp://u:p@a:5672/v", "amqp://u:p@b:5672/v", "amqp://u:p@c:5672/v"]


async def test_each_failed_attempt_moves_on_to_the_next_node_and_round_again() -> None:
    connection = FailoverConnection(URLS)
    seen = [connection.url.host]
    for _ in range(3):
        await connection.close_callbacks(ConnectionRefusedError())  # as aio-pika reports a failed attempt
        seen.append(connection.url.host)
    assert seen == ["a", "b", "c", "a"]


async def test_a_lost_connection_reported_twice_moves_on_once() -> None:
    connection = FailoverConnection(URLS)
    connection.transport = lost = object()  # type: ignore[assignment]  # a connection that was made
    await connection.close_callbacks(RuntimeError("channels not restored"))
    await connection.close_callbacks(RuntimeError("channels not restored"))  # its transport closing, same loss
    assert connection.url.host == "b" and connection.failovers == 1
    assert lost is connection.transport


async def test_a_connection_closed_on_purpose_stays_where_it_is() -> None:
    connection = FailoverConnection(URLS)
    await connection.close()
    assert connection.url.host == "a" and connection.failovers == 0
