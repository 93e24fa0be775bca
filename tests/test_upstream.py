"""Upstream list sources: central.watchlists.upstream against a real HTTP server and real files."""

from __future__ import annotations

import hashlib
import os

import aiohttp
import msgspec
import pytest
from aiohttp import web

from central.watchlists import upstream
from central.watchlists.files import ImportRejected
from central.watchlists.upstream import SourceState, UpstreamError, UpstreamSettings, UpstreamSource
from tests.support import free_port

LIST_V1 = "plate,reason\n京A12345,stolen\n京B2345*,pattern\n".encode()
LIST_V2 = "plate,reason\n京A12345,stolen\n京C99999,new\n".encode()
BAD_LIST = "plate,colour\n京A12345,mauve\n".encode()


class FakeUpstream:
    """An upstream list server that honours If-None-Match, and remembers what it was asked."""

    def __init__(self) -> None:
        self.url = ""
        self.body = LIST_V1
        self.status = 200
        self.with_etag = True
        self.requests: list[dict[str, str]] = []
        self.answers: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        response = self._answer(request)
        self.answers.append(response.status)
        return response

    def _answer(self, request: web.Request) -> web.Response:
        if self.status != 200:
            return web.Response(status=self.status, text="upstream is down")
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if self.with_etag and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304)
        headers = {"ETag": etag, "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"} if self.with_etag else {}
        return web.Response(body=self.body, headers=headers, content_type="text/csv")


@pytest.fixture
async def server(aiohttp_server):
    fake = FakeUpstream()
    app = web.Application()
    app.router.add_get("/lists/stolen.csv", fake.handle)
    srv = await aiohttp_server(app)
    fake.url = str(srv.make_url("/lists/stolen.csv"))
    return fake


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def http_source(url: str, **kw) -> UpstreamSource:
    return UpstreamSource(UpstreamSettings(name="ministry", list_id="stolen", url=url, **kw))


def plates_of(result) -> list[str]:
    return [e.plate for e in result.entries]


def without_error(state: SourceState) -> dict:
    fields = msgspec.structs.asdict(state)
    fields.pop("last_error")
    return fields


async def test_http_first_poll_then_304_then_change(server, session):
    source = http_source(server.url)
    result = await source.poll(session)
    assert plates_of(result) == ["京A12345", "京B2345*"]
    assert all(e.created_by == "upstream:ministry" and e.list_id == "stolen" for e in result.entries)
    assert source.state.etag and source.state.last_modified and source.state.fingerprint
    assert source.state.last_entries == 2 and source.state.last_error is None
    changed_at = source.state.last_change_at
    assert changed_at is not None

    assert await source.poll(session) is None
    assert server.answers == [200, 304]
    assert server.requests[1]["If-None-Match"] == source.state.etag
    assert server.requests[1]["If-Modified-Since"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert source.state.last_change_at == changed_at

    server.body = LIST_V2
    result = await source.poll(session)
    assert plates_of(result) == ["京A12345", "京C99999"]
    assert server.answers == [200, 304, 200]
    assert source.state.last_change_at >= changed_at


async def test_http_same_body_without_etag_is_unchanged(server, session):
    server.with_etag = False
    source = http_source(server.url)
    assert await source.poll(session) is not None
    assert await source.poll(session) is None
    assert server.answers == [200, 200]
    assert "If-None-Match" not in server.requests[1]


async def test_http_error_status_is_an_upstream_error(server, session):
    source = http_source(server.url)
    await source.poll(session)
    before = without_error(source.state)
    server.status = 503
    with pytest.raises(UpstreamError, match="503"):
        await source.poll(session)
    assert "ministry" in source.state.last_error and "503" in source.state.last_error
    assert without_error(source.state) == before

    server.status = 200
    assert await source.poll(session) is None
    assert source.state.last_error is None


async def test_bad_upstream_file_is_rejected_whole(server, session):
    source = http_source(server.url)
    await source.poll(session)
    before = without_error(source.state)
    server.body = BAD_LIST
    with pytest.raises(ImportRejected) as caught:
        await source.poll(session)
    assert caught.value.problems[0].line == 2
    assert "mauve" in source.state.last_error
    assert without_error(source.state) == before

    server.body = LIST_V2
    assert plates_of(await source.poll(session)) == ["京A12345", "京C99999"]
    assert source.state.last_error is None


async def test_unreachable_upstream_is_an_upstream_error(session):
    source = http_source(f"http://127.0.0.1:{free_port()}/list.csv?key=secret")
    with pytest.raises(UpstreamError, match="failed") as caught:
        await source.poll(session)
    assert "secret" not in str(caught.value)
    assert source.state.last_error == str(caught.value)


async def test_token_is_sent_as_bearer(server):
    source = http_source(server.url, token="s3cret")
    assert await source.poll() is not None  # no session given: the source makes its own
    assert server.requests[0]["Authorization"] == "Bearer s3cret"
    await http_source(server.url).poll()
    assert "Authorization" not in server.requests[1]


async def test_body_over_the_limit_is_refused(server, session, monkeypatch):
    monkeypatch.setattr(upstream, "MAX_BODY_BYTES", 10)
    source = http_source(server.url)
    with pytest.raises(UpstreamError, match="limit"):
        await source.poll(session)
    assert source.state.fingerprint is None


async def test_forget_makes_the_next_poll_fetch_again(server, session):
    source = http_source(server.url)
    await source.poll(session)
    source.forget()
    assert plates_of(await source.poll(session)) == ["京A12345", "京B2345*"]
    assert server.answers == [200, 200]


def file_source(path, fmt="csv") -> UpstreamSource:
    return UpstreamSource(UpstreamSettings(name="local", list_id="stolen", path=str(path), format=fmt))


def write(path, data: bytes, mtime_ns: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_file_source(tmp_path):
    path = tmp_path / "stolen.csv"
    write(path, LIST_V1, 1_700_000_000_000_000_000)
    source = file_source(path)
    assert plates_of(await source.poll()) == ["京A12345", "京B2345*"]
    assert source.state.size == len(LIST_V1)
    assert await source.poll() is None  # same stat: not even read

    write(path, LIST_V1, 1_700_000_100_000_000_000)  # touched, same content
    assert await source.poll() is None
    assert source.state.mtime_ns == 1_700_000_100_000_000_000

    write(path, LIST_V2, 1_700_000_200_000_000_000)
    assert plates_of(await source.poll()) == ["京A12345", "京C99999"]
    assert source.state.last_entries == 2


async def test_file_source_errors(tmp_path):
    path = tmp_path / "stolen.jsonl"
    source = file_source(path, "json")
    with pytest.raises(UpstreamError, match="cannot read"):
        await source.poll()
    assert source.state.last_error

    write(path, b'{"plate": "A1"}\n{"plate": ""}\n', 1_700_000_000_000_000_000)
    with pytest.raises(ImportRejected):
        await source.poll()
    assert source.state.fingerprint is None and source.state.mtime_ns is None

    write(path, b'{"plate": "A1"}\n{"plate": "A2"}\n', 1_700_000_000_000_000_000)
    assert plates_of(await source.poll()) == ["A1", "A2"]
    assert source.state.last_error is None


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"url": "http://example.invalid/x.csv", "path": "/tmp/x.csv"},
        {"url": "ftp://example.invalid/x.csv"},
        {"path": "/tmp/x.csv", "token": "t"},
        {"path": "/tmp/x.csv", "interval_s": 0},
    ],
)
def test_bad_settings_name_the_source(kw):
    with pytest.raises(ValueError, match="ministry"):
        UpstreamSource(UpstreamSettings(name="ministry", list_id="stolen", **kw))


def test_settings_reject_unknown_keys():
    with pytest.raises(msgspec.ValidationError, match="colour"):
        msgspec.convert({"name": "a", "list_id": "b", "path": "/x", "colour": "red"}, UpstreamSettings)


def test_state_round_trips_through_json():
    state = SourceState(name="ministry", etag='"abc"', fingerprint="f" * 64, last_entries=3, mtime_ns=5)
    assert msgspec.json.decode(msgspec.json.encode(state), type=SourceState) == state
