"""The hub hands each MQTT message to its part by the topic's kind, parsed in protocols/topics.py only."""

from __future__ import annotations

import time

from central.app import create_app
from central.settings import HubSettings, MqttSettings
from central.web import keys
from protocols import topics


async def test_only_a_cordon_evidence_reply_topic_goes_to_the_evidence_broker(
    aiohttp_client, tmp_path, dead_broker_url
):
    client = await aiohttp_client(
        create_app(HubSettings(data_dir=str(tmp_path / "hub"), mqtt=MqttSettings(url=dead_broker_url)))
    )
    on_message = client.app[keys.LINK]._on_message_cb
    # It ends like an evidence reply but is no Cordon topic (a bad checkpoint id): ingest dead-letters it
    # (the evidence broker would have dropped it with a log line only).
    result = on_message("cordon/v1/cp/bad.id/evidence/reply", b"{}", time.time(), False).result(timeout=30)
    assert result.dead_letters == 1
    # A real evidence reply goes to the evidence broker, which answers nothing to the writer.
    assert on_message(topics.evidence_reply("SD-JN-001"), b"{}", time.time(), False) is None
