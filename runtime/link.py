"""What both sides' MQTT links share, without the MQTT library (each side has its own module that imports
it: ``central/mqtt.py``, ``edge/uplink.py``): the state a link reports, and the refusals not worth retrying."""

from __future__ import annotations

from enum import StrEnum


class LinkState(StrEnum):
    """Where a side's connection to the broker stands (its health page and metrics show it)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    OFFLINE = "offline"
    REFUSED = "refused"
    """The broker refused the credentials: retrying will not help, the link has stopped."""


#: CONNACK codes that retrying cannot fix: MQTT 3.1.1's, and the MQTT 5 codes paho 2 maps them to.
REFUSED_FOR_GOOD = {
    4: "bad user name or password",
    5: "not authorized",
    134: "bad user name or password",
    135: "not authorized",
}
