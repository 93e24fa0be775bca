"""Two real ``cordon hub`` processes on one PostgreSQL database (issue 23): each duty runs on one of them,
and when that one is killed (SIGKILL) the other takes every duty over within a few seconds; retention
runs on one hub at a time, an unanswered alert is escalated once and a webhook gets each alert once,
before and after the takeover."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import psycopg
from aiohttp import web

from central.record.escalation import ACTION as ESCALATED
from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.store import PgStores
from cordon.testing import free_port
from tests.support import hub_service, running, until, wait_port
from tests.test_escalation import alert
from tests.test_hub_postgresql import split_password

BEAT_S, LEASE_S, PURGE_S = 0.25, 1.0, 0.5
DUTIES = ["escalation", "evidence", "feed", "redispatch", "retention", "upstream:police", "webhooks"]


def shared(duties: list[str]) -> list[str]:
    """The duties one hub of several runs, without each hub's own life duty (``hub:<name>``)."""
    return [d for d in duties if not d.startswith("hub:")]


async def health(http: aiohttp.ClientSession, hub) -> dict:  # noqa: ANN001
    async with http.get(f"{hub.base}/api/v1/health") as resp:
        return await resp.json()


def audit(dsn: str, action: str) -> list:
    with psycopg.connect(dsn) as conn:
        return list(reversed(PgAuditStore.records(conn, action=action)))


async def test_two_hubs_share_the_duties_and_one_takes_them_all_when_the_other_is_killed(
    tmp_path, pg_dsn, dead_broker_url
):
    dsn, password = split_password(pg_dsn)
    secret = tmp_path / "db-password"
    secret.write_text(password, encoding="utf-8")
    police = tmp_path / "police.csv"
    police.write_text("plate,reason\n鲁Q8K2L1,线索\n", encoding="utf-8")
    delivered: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        delivered.append(request.headers["Idempotency-Key"])
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()

    def hub(name: str):  # noqa: ANN202
        return hub_service(
            tmp_path / name,
            dead_broker_url,
            extra={
                "store": {"backend": "postgresql", "dsn": dsn, "password_file": str(secret)},
                "cluster": {"name": name, "duty_beat_s": BEAT_S, "duty_lease_s": LEASE_S},
                "record": {"purge_interval_s": PURGE_S},
                "console": {"escalate_after_s": 1.0},
                "mqtt": {"client_id": f"cordon-{name}"},
                "upstream": [{"name": "police", "list_id": "police", "path": str(police), "interval_s": 0.5}],
                "webhooks": [{"name": "sms", "url": f"http://127.0.0.1:{hook_port}/hook"}],
            },
        )

    a, b = hub("hub-a"), hub("hub-b")
    store = PgStores(pg_dsn)
    try:
        with running(a, b):
            for h in (a.start(wait=False), b.start(wait=False)):  # started together: they race for the duties
                await asyncio.to_thread(wait_port, h.port, 30)
            async with aiohttp.ClientSession() as http:

                async def holdings() -> dict[str, list[str]]:
                    held = {
                        "hub-a": (await health(http, a))["duties"],
                        "hub-b": (await health(http, b))["duties"],
                    }
                    for name, duties in held.items():
                        assert f"hub:{name}" in duties or not duties, f"{name} runs without its life duty"
                    return {name: shared(duties) for name, duties in held.items()}

                async def all_held() -> dict[str, list[str]] | None:
                    held = await holdings()
                    return held if set(held["hub-a"]) | set(held["hub-b"]) == set(DUTIES) else None

                held = await until(all_held, timeout=20, what="every duty held")
                assert not set(held["hub-a"]) & set(held["hub-b"]), f"a duty held twice: {held}"
                # Each hub takes what it finds free at its beat: the first to beat usually gets them all.
                holder, other = (a, b) if "retention" in held["hub-a"] else (b, a)
                holder_name, other_name = ("hub-a", "hub-b") if holder is a else ("hub-b", "hub-a")

                # Work only one hub does: an unanswered alert escalated, a webhook delivery, retention.
                await asyncio.to_thread(store.start)
                await store.run(lambda tx: store.insert_alert(tx, alert("before", time.time() - 2)))
                await until(lambda: "before" in delivered, what="delivered")
                await until(
                    lambda: [r.target for r in audit(pg_dsn, ESCALATED)] == ["before"], what="escalated"
                )
                await asyncio.sleep(3 * PURGE_S)

                holder.kill()  # SIGKILL: no goodbye; its kernel closes its sockets
                killed = time.monotonic()
                while shared((await health(http, other))["duties"]) != DUTIES:
                    assert time.monotonic() - killed < 10, "no takeover within 10 s"
                    await asyncio.sleep(0.02)
                takeover = time.monotonic() - killed
                print(f"takeover after SIGKILL: {takeover:.3f} s")
                assert takeover <= 5.0, f"taken over {takeover:.2f} s after the holder was killed"

                await store.run(lambda tx: store.insert_alert(tx, alert("after", time.time() - 2)))
                await until(lambda: "after" in delivered, what="delivered by the new holder")
                await until(
                    lambda: sorted(r.target for r in audit(pg_dsn, ESCALATED)) == ["after", "before"],
                    what="escalated by the new holder",
                )
                await asyncio.sleep(3 * PURGE_S)
    finally:
        await asyncio.to_thread(store.stop)
        await runner.cleanup()

    escalated = [r.target for r in audit(pg_dsn, ESCALATED)]
    assert sorted(escalated) == ["after", "before"], f"each alert escalated once: {escalated}"
    assert sorted(delivered) == ["after", "before"], f"each alert delivered once: {delivered}"
    runs = [(json.loads(r.detail)["hub"], r.at) for r in audit(pg_dsn, "retention.purge")]
    hubs = [h for h, _ in runs]
    assert hubs == sorted(hubs, key=lambda h: h != holder_name), f"retention ran on both at once: {hubs}"
    assert hubs.count(holder_name) >= 3 and hubs.count(other_name) >= 3, hubs
    for h in (holder_name, other_name):
        at = [t for name, t in runs if name == h]
        gaps = [later - earlier for earlier, later in zip(at, at[1:], strict=False)]
        assert min(gaps) >= PURGE_S * 0.9, f"{h} ran retention twice within {PURGE_S} s: {gaps}"
