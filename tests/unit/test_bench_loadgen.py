"""The load generator's HTTP client against a small local server: the requests it sends, the status
and id of each reply, its connection limit, and a server that closes connections."""

from __future__ import annotations

import asyncio

import pytest

from bench.loadgen import LoadSpec, _Pool, _requests, _Run

pytestmark = pytest.mark.unit


class _Server:
    """Answers each POST 201 with a Location naming the request's number; every `close_every`-th
    reply says `Connection: close` and closes."""

    def __init__(self, close_every: int = 0, delay: float = 0.0) -> None:
        self.close_every, self.delay = close_every, delay
        self.requests: list[bytes] = []
        self.connections = 0
        self.busy = self.most_busy = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(
                    next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
                )
                self.requests.append(head + await reader.readexactly(length))
                n = len(self.requests)
                self.busy += 1
                self.most_busy = max(self.most_busy, self.busy)
                await asyncio.sleep(self.delay)
                self.busy -= 1
                close = self.close_every and n % self.close_every == 0
                writer.write(
                    b"HTTP/1.1 201 Created\r\nLocation: /v1/registrations/r%d\r\nContent-Length: 2\r\n%s\r\n{}"
                    % (n, b"Connection: close\r\n" if close else b"")
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/registrations"

    async def __aexit__(self, *_: object) -> None:
        self.server.close()


def _spec(url: str, **kw) -> LoadSpec:
    return LoadSpec(url=url, tokens=["t0", "t1"], seed=7, label="loadgen", count=40, **kw)


def test_each_request_is_made_in_advance_with_its_partner_token_and_body_length() -> None:
    requests = _requests(_spec("http://127.0.0.1:8080/v1/registrations", mode="open", duration=1.0, rate=10))
    assert len(requests) == 40
    for raw in requests:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/registrations HTTP/1.1"
        assert b"Host: 127.0.0.1:8080" in lines
        assert b"Authorization: Bearer t0" in lines or b"Authorization: Bearer t1" in lines
        assert f"Content-Length: {len(body)}".encode() in lines and body.startswith(b"{")


async def test_a_closed_loop_counts_every_reply_and_its_id_through_connections_the_server_closes() -> None:
    server = _Server(close_every=7)
    async with server as url:
        result = await _Run(_spec(url, mode="closed", duration=5.0, concurrency=4)).run()
    assert result.ran_out and result.sent == 40
    assert result.statuses == {"201": 40} and result.failures == 0
    assert sorted(int(i.removeprefix("r")) for i, _ in result.ids) == list(range(1, 41))
    assert len(server.requests) == 40 and server.connections > 4  # reconnected after each close


async def test_the_pool_never_opens_more_connections_than_its_limit() -> None:
    server = _Server(delay=0.02)
    async with server as url:
        pool = _Pool("127.0.0.1", int(url.split(":")[2].split("/")[0]), limit=3)
        request = _requests(_spec(url, mode="open", duration=1.0, rate=10))[0]
        replies = await asyncio.gather(*(pool.request(request) for _ in range(12)))
        pool.close()
    assert [status for status, _ in replies] == [201] * 12
    assert server.connections == 3 and server.most_busy == 3


async def test_an_unreachable_server_is_a_counted_failure_not_a_crash() -> None:
    server = _Server()
    async with server as url:
        pass  # closed: nothing listens on its port any more
    result = await _Run(_spec(url, mode="open", duration=0.2, rate=50, grace=1.0)).run()
    assert result.failures == result.sent == 10
    assert set(result.statuses) == {"ConnectionRefusedError"}
