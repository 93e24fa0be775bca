"""A request the record must answer while its store is away (PostgreSQL down or cut off) is answered
``503 Service Unavailable`` with a ``Retry-After``, in words, not a bare 500 and a traceback: the console
says the record cannot be reached for now, and a front door (HAProxy) or a script knows to try again,
or another hub. The store raises :class:`~central.record.tx.StoreUnavailable` for exactly that case;
any other exception is a bug and stays a 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from central.record.tx import StoreUnavailable
from runtime.web import json_error

log = logging.getLogger(__name__)

#: Seconds a client is told to wait before trying again; the store reconnects for the next request.
RETRY_AFTER_S = 5


@web.middleware
async def store_unavailable(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        log.warning("%s %s: the record store is unavailable: %s", request.method, request.path, exc)
        raise json_error(
            web.HTTPServiceUnavailable,
            "the record store cannot be reached for now; nothing was changed, try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
