"""The consent client against a server that closes an idle keep-alive connection just as it is reused.

That is the race every HTTP client meets with a server that closes idle connections (uvicorn after
`http_keep_alive_seconds`): the client picks a pooled connection whose close is still in flight, its
request meets a closed socket, and — without care — a melding is refused 503 though the consent service
is up. The check is safe to repeat, so the client asks again on a fresh connection.
"""

from __future__ import annotations

import asyncio
import json

from shared.auth import ServiceTokens
from shared.clients.consent import ConsentClient

ANSWER = json.dumps({"allowed": True, "reason": None, "consent": None}).encode()


class ClosesAfterFirstAnswer:
    """An HTTP server that answers the first request on each connection with keep-alive, then closes that
    connection without answering the next one (as a keep-alive timeout firing under the client does)."""

    def __init__(self) -> None:
        self.requests_answered = 0
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._read_request(reader)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(ANSWER)}\r\n\r\n"
        writer.write(head.encode() + ANSWER)
        await writer.drain()
        self.requests_answered += 1
        await self._read_request(reader)  # the reused connection's request: dropped unanswered
        writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        await reader.readexactly(length)


class FixedToken(ServiceTokens):
    def __init__(self) -> None:
        pass

    def token(self) -> str:
        return "token"


async def test_a_connection_the_server_closed_while_idle_is_not_a_refused_melding() -> None:
    server_side = ClosesAfterFirstAnswer()
    server = await asyncio.start_server(server_side.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ConsentClient(f"http://127.0.0.1:{port}", FixedToken())
    try:
        for _ in range(20):
            answer = await client.check(
                consent_id="c", bsn="999990019", org_id="12345678", recipient_types=["jgz"], risk_domains=["lvb"]
            )
            assert answer.allowed
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert server_side.requests_answered == 20
    assert server_side.connections >= 20  # each dropped connection was replaced, not given up on
