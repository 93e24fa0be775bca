"""The PROXY protocol (version 2, binary) in front of an aiohttp app: a front door that passes TLS through
(HAProxy in ``mode tcp`` with ``send-proxy-v2``) tells the server who its client is.

Passed through, every connection reaches the server from the front's own address, so whatever counts by
address (the failed logins held back per address, the audit's ``remote``, a 视图库's ``allow_from``) would
see one client. HAProxy then writes, before the client's first byte, a header naming the client's address
and port. ``ProxyProtocolSite`` reads that header from the connections whose peer is one of the trusted
front addresses, before TLS, and hands the socket to aiohttp with the client's address as its peer name, so
``request.remote`` is the client's everywhere, with no header anyone could forge: a connection from
anywhere else is taken as it comes (a header it sends is the start of a broken TLS handshake), and one from
a front that does not begin with a valid header is refused with a log line.

Only the header's first 16 bytes and the address block it announces are read from the socket (never
more), so the TLS handshake that follows is left to asyncio's own TLS, as on any other site.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from protocols.errors import CordonError
from runtime.web import Network, address_allowed

log = logging.getLogger(__name__)

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: How long a trusted front has to send the header after connecting.
HEADER_TIMEOUT_S = 5.0
#: The largest address block a header may announce (TLVs included): more is not a front's header.
MAX_BLOCK = 1024


class ProxyHeaderError(CordonError, ValueError):
    """A PROXY protocol header that is missing or malformed; the message says how."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a header says: ``client`` is None for a LOCAL header (the front's own health check)."""

    client: tuple[str, int] | None
    length: int


def parse_fixed(first16: bytes) -> tuple[int, int, int]:
    """(command, family byte, length of the address block) from a header's first 16 bytes."""
    if len(first16) < 16 or first16[:12] != SIGNATURE:
        raise ProxyHeaderError("no PROXY protocol v2 header")
    version, command = first16[12] >> 4, first16[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY protocol version {version}, not 2")
    if command not in (0, 1):
        raise ProxyHeaderError(f"PROXY protocol command {command} is neither LOCAL nor PROXY")
    (length,) = struct.unpack("!H", first16[14:16])
    if length > MAX_BLOCK:
        raise ProxyHeaderError(f"PROXY protocol address block of {length} bytes")
    return command, first16[13], length


def parse(header: bytes) -> ProxyHeader:
    """A whole header: the fixed 16 bytes and the address block they announce."""
    command, family, length = parse_fixed(header[:16])
    block = header[16 : 16 + length]
    if len(block) < length:
        raise ProxyHeaderError("a PROXY protocol header cut short")
    if command == 0:  # LOCAL: the front speaks for itself (its health checks)
        return ProxyHeader(None, 16 + length)
    transport = family & 0x0F
    if transport != 1:  # STREAM
        raise ProxyHeaderError(f"PROXY protocol transport {transport} is not TCP")
    if family >> 4 == 1 and length >= 12:
        host = str(ipaddress.IPv4Address(block[0:4]))
        (port,) = struct.unpack("!H", block[8:10])
    elif family >> 4 == 2 and length >= 36:
        address = ipaddress.IPv6Address(block[0:16])
        host = str(address.ipv4_mapped or address)
        (port,) = struct.unpack("!H", block[32:34])
    else:
        raise ProxyHeaderError(f"PROXY protocol address family {family >> 4} with {length} bytes")
    return ProxyHeader((host, port), 16 + length)


def build(client: tuple[str, int], server: tuple[str, int]) -> bytes:
    """A PROXY v2 header for a TCP connection (what HAProxy's ``send-proxy-v2`` writes; for tests and
    tools that speak to a hub as a front would)."""
    src, dst = ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0])
    if src.version == 4 and dst.version == 4:
        block = src.packed + dst.packed + struct.pack("!HH", client[1], server[1])
        family = 0x11
    else:
        src6 = src if src.version == 6 else ipaddress.IPv6Address(f"::ffff:{src}")
        dst6 = dst if dst.version == 6 else ipaddress.IPv6Address(f"::ffff:{dst}")
        block = src6.packed + dst6.packed + struct.pack("!HH", client[1], server[1])
        family = 0x21
    return SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(block)) + block


def networks(addresses: Iterable[str]) -> list[Network]:
    """The trusted fronts, as addresses or networks (``10.0.0.5``, ``10.0.0.0/29``)."""
    return [ipaddress.ip_network(a, strict=False) for a in addresses]


class _ClientSocket(socket.socket):
    """The accepted socket, naming the client the header gave as its peer: asyncio's transport asks its
    socket once, and aiohttp's ``request.remote`` reads what the transport recorded."""

    client: tuple[str, int]

    def getpeername(self) -> tuple[str, int]:  # type: ignore[override]
        return self.client


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await loop.sock_recv(sock, n - len(data))
        if not chunk:
            raise ProxyHeaderError(f"the connection closed after {len(data)} bytes of the header")
        data += chunk
    return data


async def read_header(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> ProxyHeader:
    """Read one header from a non-blocking socket, and not a byte more."""
    first = await _recv_exactly(loop, sock, 16)
    _, _, length = parse_fixed(first)
    return parse(first + await _recv_exactly(loop, sock, length))


class _Listener:
    """What ``BaseSite.stop`` closes: the listening socket and the connections being taken in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.sock.close()


class ProxyProtocolSite(web.BaseSite):
    """An aiohttp site on ``host:port`` that takes a PROXY v2 header from the ``fronts`` (and only them)."""

    __slots__ = ("_host", "_port", "_fronts", "_listener")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        fronts: list[Network],
        *,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 5.0,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, shutdown_timeout=shutdown_timeout, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._fronts = host, port, fronts
        self._listener: _Listener | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return (
            f"{scheme}://{self._host}:{self._port} (PROXY protocol from {', '.join(map(str, self._fronts))})"
        )

    async def start(self) -> None:
        await super().start()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host, self._port), family=family, backlog=self._backlog)
        sock.setblocking(False)
        self._listener = _Listener(sock)
        self._server = self._listener  # type: ignore[assignment]  # BaseSite.stop closes it
        accepting = asyncio.create_task(self._accept(sock))
        self._listener.tasks.add(accepting)

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        listener = self._listener
        assert listener is not None
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as exc:
                if sock.fileno() == -1:
                    return  # closed by stop()
                log.warning("http: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._take(loop, conn, peer))
            listener.tasks.add(task)
            task.add_done_callback(listener.tasks.discard)

    async def _take(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, peer: tuple) -> None:
        conn.setblocking(False)
        client: tuple[str, int] = (peer[0], peer[1])
        if self._fronts and address_allowed(peer[0], self._fronts):
            try:
                header = await asyncio.wait_for(read_header(loop, conn), HEADER_TIMEOUT_S)
            except (ProxyHeaderError, OSError, TimeoutError) as exc:
                why = "no header in time" if isinstance(exc, TimeoutError) else str(exc)
                log.warning(
                    "http: connection from %s:%s refused: it is a front door (http.proxy_protocol_from) "
                    "and must begin with a PROXY protocol v2 header: %s",
                    peer[0],
                    peer[1],
                    why,
                )
                conn.close()
                return
            if header.client is not None:
                client = header.client
        wrapped = _ClientSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())
        wrapped.client = client
        server = self._runner.server
        assert server is not None
        try:
            await loop.connect_accepted_socket(
                server, wrapped, ssl=self._ssl_context, ssl_handshake_timeout=HEADER_TIMEOUT_S * 6
            )
        except (OSError, ssl.SSLError) as exc:  # a failed handshake is the client's business, as on TCPSite
            log.debug("http: connection from %s: %s", client, exc)
            with contextlib.suppress(OSError):
                wrapped.close()
