"""Every HTTP route of the hub and edge apps has an explicit access rule, and the rule is enforced."""

import re

import pytest

from central.app import create_app as create_hub
from central.settings import HubSettings
from central.settings import MqttSettings as HubMqtt
from central.web.policy import POLICY as HUB_POLICY
from edge.app import create_app as create_edge
from edge.settings import EdgeSettings
from edge.settings import MqttSettings as EdgeMqtt
from edge.web import POLICY as EDGE_POLICY
from runtime.web import Access


def route_names(app):
    names = set()
    for resource in app.router.resources():
        for route in resource:
            names.add(route.name or resource.name)
    return names


#: Routes whose variable parts are constrained by a pattern: a path that matches them.
SAMPLES = {"user_change": "/api/v1/users/x/disable", "viid_not_supported": "/VIID/Faces"}


def sample_path(name: str, formatter: str, pattern) -> str:  # noqa: ANN001
    path = SAMPLES.get(name) or re.sub(r"\{[^}]+\}", "x", formatter)
    assert pattern is None or pattern.fullmatch(path), f"add a sample path for the route {name} to SAMPLES"
    return path


@pytest.fixture
def apps(tmp_path, dead_broker_url):
    hub = create_hub(HubSettings(data_dir=str(tmp_path / "hub"), mqtt=HubMqtt(url=dead_broker_url)))
    edge = create_edge(
        EdgeSettings(
            checkpoint="SD-DZ-001", data_dir=str(tmp_path / "edge"), mqtt=EdgeMqtt(url=dead_broker_url)
        )
    )
    return {"hub": (hub, HUB_POLICY), "edge": (edge, EDGE_POLICY)}


@pytest.mark.parametrize("side", ["hub", "edge"])
def test_every_route_has_a_rule_and_every_rule_a_route(apps, side):
    app, policy = apps[side]
    names = route_names(app)
    assert None not in names, "every route must have a name"
    assert names - set(policy) == set(), f"routes without an access rule on the {side}"
    assert set(policy) - names == set(), f"rules for routes that do not exist on the {side}"


@pytest.mark.parametrize("side", ["hub", "edge"])
async def test_session_routes_refuse_strangers(apps, side, aiohttp_client):
    app, policy = apps[side]
    client = await aiohttp_client(app)
    checked = set()
    for resource in app.router.resources():
        for route in resource:
            name = route.name or resource.name
            if policy[name] is Access.PUBLIC or route.method == "HEAD":
                continue
            info = resource.get_info()
            path = info.get("path") or sample_path(name, info.get("formatter", ""), info.get("pattern"))
            resp = await client.request(route.method, path, allow_redirects=False)
            assert resp.status in (302, 401), f"{side} {route.method} {path} answered {resp.status}"
            checked.add(name)
    assert checked == {n for n, rule in policy.items() if rule is not Access.PUBLIC}
