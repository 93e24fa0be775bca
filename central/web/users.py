"""Accounts over HTTP (admins only): list, add, disable or enable, set a password, issue an API token.

Every change is audited in the same transaction and the in-memory directory is reloaded right after,
so a disabled account's sessions end with its next request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import msgspec
from aiohttp import web

from central.people import users
from central.record.tx import Tx
from central.web import keys
from protocols import topics
from protocols.messages import OfficerAccounts, encode
from runtime.web import Rule, json_error, principal_of

log = logging.getLogger(__name__)

POLICY: dict[str, Rule] = {
    "users": users.ADMINS,
    "user_add": users.ADMINS,
    "user_change": users.ADMINS,
}
Name = Annotated[str, msgspec.Meta(min_length=2, max_length=64)]


class UserInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: Name
    role: str
    password: Annotated[str, msgspec.Meta(max_length=256)]
    display_name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    checkpoint: Annotated[str, msgspec.Meta(max_length=128)] | None = None


class PasswordInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    password: Annotated[str, msgspec.Meta(max_length=256)]


def _who(request: web.Request) -> tuple[str, str]:
    principal = principal_of(request)
    return (principal.name, principal.role) if principal else ("?", "")


async def _decode(request: web.Request, kind: type) -> Any:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.DecodeError as exc:
        raise json_error(web.HTTPBadRequest, f"invalid body: {exc}") from None


async def _change(request: web.Request, job: Any) -> Any:
    """Run an account change in the writer (raising UserError as 400), then reload the directory."""
    app = request.app
    directory = app[keys.DIRECTORY]

    def run(tx: Tx) -> Any:
        result = job(tx)
        directory.reload(tx)
        return result

    try:
        result = await app[keys.STORE].run(run)
    except users.UserError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    await asyncio.to_thread(publish_accounts, app)  # the officers' edges get the change (retained) at once
    return result


async def user_list(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(request.app[keys.STORE].read, request.app[keys.STORE].users.all_users)
    return web.json_response({"users": [u.public() for u in found], "roles": list(users.ROLES)})


async def user_add(request: web.Request) -> web.Response:
    data = await _decode(request, UserInput)
    try:
        hashed = await asyncio.to_thread(users.hash_password, data.password)
    except users.UserError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    actor, role = _who(request)

    def job(tx: Tx) -> users.User:
        user = request.app[keys.STORE].users.add(
            tx, data.username, data.role, hashed, display_name=data.display_name, checkpoint=data.checkpoint
        )
        request.app[keys.STORE].audit.append(
            tx,
            actor,
            role,
            "user.add",
            target=user.username,
            detail={"role": user.role, "checkpoint": user.checkpoint},
        )
        return user

    user = await _change(request, job)
    return web.json_response({"user": user.public()}, status=201)


async def user_change(request: web.Request) -> web.Response:
    username, action = request.match_info["username"], request.match_info["action"]
    actor, role = _who(request)
    answer: dict[str, Any] = {}
    if action in ("disable", "enable"):

        def job(tx: Tx) -> users.User:
            user = request.app[keys.STORE].users.set_disabled(tx, username, action == "disable")
            request.app[keys.STORE].audit.append(tx, actor, role, f"user.{action}", target=username)
            return user
    elif action == "password":
        data = await _decode(request, PasswordInput)
        try:
            hashed = await asyncio.to_thread(users.hash_password, data.password)
        except users.UserError as exc:
            raise json_error(web.HTTPBadRequest, str(exc)) from None

        def job(tx: Tx) -> users.User:
            user = request.app[keys.STORE].users.set_password(tx, username, hashed)
            request.app[keys.STORE].audit.append(tx, actor, role, "user.password", target=username)
            return user
    elif action == "token":

        def job(tx: Tx) -> users.User:
            answer["token"] = request.app[keys.STORE].users.new_token(tx, username)
            request.app[keys.STORE].audit.append(tx, actor, role, "user.token", target=username)
            return request.app[keys.STORE].users.get(tx, username)
    else:
        raise json_error(web.HTTPNotFound, f"unknown account action {action!r}")
    user = await _change(request, job)
    return web.json_response({"user": user.public(), **answer})


def publish_accounts(app: web.Application) -> int:
    """Publish every checkpoint's officer accounts, retained (any thread; reads on its own connection)."""
    store = app[keys.STORE]

    def q(tx: Tx) -> list[OfficerAccounts]:
        return [store.users.officer_accounts(tx, cp) for cp in store.users.officer_checkpoints(tx)]

    try:
        sets = store.read(q)
    except Exception:
        log.exception("could not read the officer accounts to publish")
        return 0
    for accounts in sets:
        app[keys.LINK].publish(topics.accounts(accounts.checkpoint), encode(accounts), qos=1, retain=True)
    return len(sets)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/users", user_list, name="users")
    app.router.add_post("/api/v1/users", user_add, name="user_add")
    app.router.add_post(
        "/api/v1/users/{username}/{action:disable|enable|password|token}", user_change, name="user_change"
    )
