"""OpenAPI 3 documents of the hub and edge HTTP APIs, and the check that keeps each one true.

Each side keeps its document as a file next to its routes (``central/openapi.json``,
``edge/openapi.json``), served at ``GET /api/v1/openapi.json``. ``problems()`` compares a document
with the app's router and route policy in both directions: every route is documented with the
access it really has, and every documented operation exists. tests/test_openapi.py runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from .web import Access, Roles, Rule

#: How each kind of rule is written in a document: ``security`` and the ``x-roles`` extension.
SECURITY_SCHEMES: dict[str, Any] = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "cordon_session",
        "description": "a signed-in person's session (POST /login)",
    },
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "an account's API token (acts with the account's role) or a machine token",
    },
    "cameraToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Camera-Token",
        "description": "the camera's own token (also Authorization: Bearer or ?token=)",
    },
    "viidIdentity": {
        "type": "apiKey",
        "in": "header",
        "name": "User-Identify",
        "description": "GA/T 1400: the peer's 20-digit code; the edge takes it only from a device registered "
        "with HTTP digest (MD5, qop=auth), the hub only from a configured platform with its notify token "
        "(?token=) from an allowed address",
    },
}


def security_of(rule: Rule) -> tuple[list[dict[str, list[str]]], list[str] | None]:
    """The ``security`` list and ``x-roles`` an operation with this rule must declare."""
    if rule is Access.PUBLIC:
        return [], None
    if rule is Access.CAMERA:
        return [{"cameraToken": []}], None
    if rule is Access.VIID:
        return [{"viidIdentity": []}], None
    if isinstance(rule, Roles):
        return [{"session": []}, {"apiToken": []}], sorted(rule.names)
    if rule is Access.SESSION:
        return [{"session": []}, {"apiToken": []}], ["any"]
    return [{"apiToken": []}, {"session": []}], [f"machine:{rule.value}"]  # EDGE, METRICS


def routes(app: web.Application) -> dict[tuple[str, str], str]:
    """(method, OpenAPI path) -> route name, HEAD left out (aiohttp adds it to every GET)."""
    found: dict[tuple[str, str], str] = {}
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None and "prefix" in info:  # static files
            path = info["prefix"].rstrip("/") + "/{filename}"
        for route in resource:
            if route.method == "HEAD":
                continue
            # {name:regex} placeholders become plain {name} in OpenAPI
            clean = _plain_placeholders(str(path))
            found[(route.method.lower(), clean)] = route.name or resource.name or ""
    return found


def _plain_placeholders(path: str) -> str:
    out, depth, skipping = [], 0, False
    for ch in path:
        if ch == "{":
            depth += 1
            skipping = False
        elif ch == "}":
            depth -= 1
            skipping = False
        elif ch == ":" and depth == 1:
            skipping = True
            continue
        if not skipping:
            out.append(ch)
    return "".join(out)


def problems(app: web.Application, policy: dict[str, Rule], document: dict[str, Any]) -> list[str]:
    """Everything in which the document and the app disagree (empty: the document is true)."""
    found: list[str] = []
    actual = routes(app)
    documented: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                documented[(method, path)] = op
    for key, name in sorted(actual.items()):
        if key not in documented:
            found.append(f"{key[0].upper()} {key[1]} (route {name}) is not documented")
            continue
        op = documented[key]
        security, roles = security_of(policy[name])
        if op.get("security") != security:
            found.append(
                f"{key[0].upper()} {key[1]}: security {op.get('security')} but the route needs {security}"
            )
        if op.get("x-roles") != roles:
            found.append(
                f"{key[0].upper()} {key[1]}: x-roles {op.get('x-roles')} but the route allows {roles}"
            )
        if not op.get("summary"):
            found.append(f"{key[0].upper()} {key[1]}: no summary")
        if op.get("operationId") != name:
            found.append(
                f"{key[0].upper()} {key[1]}: operationId {op.get('operationId')!r}, route name {name!r}"
            )
    for key in sorted(set(documented) - set(actual)):
        found.append(f"{key[0].upper()} {key[1]} is documented but the app has no such route")
    return found


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def skeleton(
    app: web.Application, policy: dict[str, Rule], title: str, summaries: dict[str, str]
) -> dict[str, Any]:
    """A document for the app as it is (used to start or extend the kept file; summaries by route name)."""
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), name in sorted(routes(app).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        security, roles = security_of(policy[name])
        op: dict[str, Any] = {"operationId": name, "summary": summaries.get(name, ""), "security": security}
        if roles is not None:
            op["x-roles"] = roles
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
            ]
        op["responses"] = {"200": {"description": "OK"}}
        if security:
            op["responses"]["401"] = {"description": "no or wrong credentials"}
        if roles is not None and roles != ["any"]:
            op["responses"]["403"] = {"description": "signed in, but not in one of the roles in x-roles"}
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1"},
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "paths": paths,
    }
