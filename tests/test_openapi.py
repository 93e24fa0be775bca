"""Each side's OpenAPI document is true: every route documented with the access it really has,
every documented operation a real route; and it is served, publicly, at /api/v1/openapi.json."""

from __future__ import annotations

from pathlib import Path

import pytest

import central
import edge
from central.app import create_app as create_hub
from central.settings import HubSettings
from central.settings import MqttSettings as HubMqtt
from central.web.policy import POLICY as HUB_POLICY
from edge.app import create_app as create_edge
from edge.settings import EdgeSettings
from edge.settings import MqttSettings as EdgeMqtt
from edge.web import POLICY as EDGE_POLICY
from runtime.openapi import load, problems


@pytest.fixture
def apps(tmp_path, dead_broker_url):
    hub = create_hub(HubSettings(data_dir=str(tmp_path / "hub"), mqtt=HubMqtt(url=dead_broker_url)))
    edge_app = create_edge(
        EdgeSettings(
            checkpoint="SD-DZ-001", data_dir=str(tmp_path / "edge"), mqtt=EdgeMqtt(url=dead_broker_url)
        )
    )
    return {
        "hub": (hub, HUB_POLICY, Path(central.__file__).with_name("openapi.json")),
        "edge": (edge_app, EDGE_POLICY, Path(edge.__file__).with_name("openapi.json")),
    }


@pytest.mark.parametrize("side", ["hub", "edge"])
def test_the_document_and_the_router_agree_both_ways(apps, side):
    app, policy, path = apps[side]
    document = load(path)
    assert document["openapi"].startswith("3.")
    assert problems(app, policy, document) == []


def test_a_lie_in_the_document_is_caught(apps):
    app, policy, path = apps["hub"]
    document = load(path)
    document["paths"]["/api/v1/users"]["get"]["x-roles"] = ["analyst"]
    document["paths"]["/api/v1/health"]["get"]["security"] = [{"session": []}]
    del document["paths"]["/api/v1/gaps"]
    document["paths"]["/api/v1/nothing"] = {"get": {"operationId": "nothing", "summary": "x", "security": []}}
    found = "\n".join(problems(app, policy, document))
    assert "GET /api/v1/users: x-roles ['analyst'] but the route allows ['admin']" in found
    assert "GET /api/v1/health: security" in found
    assert "GET /api/v1/gaps (route gaps) is not documented" in found
    assert "GET /api/v1/nothing is documented but the app has no such route" in found


@pytest.mark.parametrize("side", ["hub", "edge"])
async def test_it_is_served_to_anyone(apps, side, aiohttp_client):
    app, _, _ = apps[side]
    client = await aiohttp_client(app)
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert (await resp.json())["paths"]["/api/v1/health"]["get"]["security"] == []
