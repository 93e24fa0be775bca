"""The hub's only MQTT module (paho-mqtt directly: its own network thread, thread-safe publish,
and delivery callbacks we need for idempotent alert dispatch).

Alone (no ``mqtt.share_group``) the hub keeps a persistent session and its status, with its last will,
on ``cordon/v1/hub/status``. Among several hubs (a share group) each takes its part of the edges' events
through a shared subscription on a clean session, keeps its own status and will on
``cordon/v1/hub/<id>/status``, and a second, small connection keeps the tier's status on
``cordon/v1/hub/status`` for edges of release r1, which know only that topic (docs/protocol.md, "Several
hubs").

A hub of a group takes its share of the events only while it can commit them: ``take_events(False)``
(``central.ingest.share`` decides it from the hub's store) unsubscribes it from the shared subscription and
says offline on its own status topic and on the tier's, so the broker gives every batch to the other hubs
and the edges send again at once what this hub had not acknowledged; ``take_events(True)`` undoes both.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from protocols import signing, topics
from protocols.folding import FOLD_WINDOW_S
from protocols.messages import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    DecodeError,
    HubParameters,
    HubStatus,
    decode,
    encode,
)
from runtime.link import REFUSED_FOR_GOOD, LinkState
from runtime.tls import MQTT_PORT, MQTTS_PORT

log = logging.getLogger(__name__)


#: Message ids acknowledged before their callback was registered, remembered at most (ids wrap at 65535).
_EARLY_KEEP = 4096

OnMessage = Callable[[str, bytes, float, bool], object]


def _send_at_once(client: paho.Client, userdata: object, sock: object) -> None:
    """Turn Nagle's algorithm off on the broker connection. With it on, a packet written while an
    earlier one is unacknowledged waits for the broker's delayed TCP ACK (about 40 ms on Linux), and
    an edge's events paid that on the way in and again for their acknowledgement."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HubLink:
    """Connects the hub to the broker; calls ``on_message(topic, payload, received_at, retained)`` from its thread."""

    def __init__(
        self,
        url: str,
        client_id: str,
        username: str | None,
        password: str | None,
        keepalive_s: int,
        on_message: OnMessage,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        on_connected: Callable[[], None] | None = None,
        tls: ssl.SSLContext | None = None,
        sign: Callable[[bytes], bytes] | None = None,
        fold_window_s: float | None = None,
        share_group: str = "",
    ) -> None:
        """``tls`` (runtime.tls.mqtt_endpoint builds it from the settings) is required by ``mqtts://``;
        ``fold_window_s`` is announced, retained, in the hub's parameters so edges fold repeated hits alike;
        ``share_group`` makes this hub one of several (``client_id`` is then its id in its status topic)."""
        self._fold_window_s = fold_window_s
        self._share_group = share_group
        #: Where this hub's birth and will go: its own topic among several, the tier's when alone.
        self._status_topic = topics.one_hub_status(client_id) if share_group else topics.hub_status()
        self._url = urlsplit(url)
        if (self._url.scheme == "mqtts") != (tls is not None):
            raise ValueError("an mqtts:// url needs a TLS context, and only it may have one")
        self._on_message_cb = on_message
        self._on_connected = on_connected
        self._sign = sign
        # Among several hubs a clean session: a persistent one would have the broker keep queueing this
        # hub's share of the events while it is down, and they would wait there for the edges' ack timeout.
        self._client = _client(
            client_id, bool(share_group), tls, username, password, reconnect_min_s, reconnect_max_s
        )
        self._client.will_set(self._status_topic, self._status(online=False), qos=1, retain=True)
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(1000)
        self._client.on_socket_open = _send_at_once
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._keepalive = keepalive_s
        #: Whether this hub takes its share of the events (only a hub of a group ever stops); changed, and
        #: read by a connect, under ``_events_lock``, so a connect and a change never cross. Held while
        #: calling into paho: paho calls ``on_connect`` holding none of the locks its calls take, and
        #: takes no lock of ours while it holds one of its own.
        self._taking = True
        self._events_lock = threading.Lock()
        self._delivered: dict[int, Callable[[], None]] = {}
        self._early: dict[int, bool] = {}
        self._lock = threading.Lock()
        self.state = LinkState.CONNECTING
        self.last_error: str | None = None
        self.connected_event = threading.Event()
        self._tier = (
            _TierStatus(
                _client(f"{client_id}-tier", True, tls, username, password, reconnect_min_s, reconnect_max_s),
                self._status,
                lambda: self.state is LinkState.CONNECTED and self._taking,
            )
            if share_group
            else None
        )

    def _status(self, *, online: bool) -> bytes:
        body = encode(
            HubStatus(
                v=SCHEMA_VERSION,
                online=online,
                sent_at=time.time(),
                schema_versions=sorted(SUPPORTED_VERSIONS),
            )
        )
        return self._sign(body) if self._sign is not None else body

    def _parameters(self) -> bytes:
        window = FOLD_WINDOW_S if self._fold_window_s is None else self._fold_window_s
        body = encode(HubParameters(v=SCHEMA_VERSION, sent_at=time.time(), fold_window_s=window))
        return self._sign(body) if self._sign is not None else body

    def start(self) -> None:
        port = self._url.port or (MQTTS_PORT if self._url.scheme == "mqtts" else MQTT_PORT)
        host = self._url.hostname or "127.0.0.1"
        self._client.connect_async(host, port, self._keepalive)
        self._client.loop_start()
        if self._tier is not None:
            self._tier.start(host, port, self._keepalive)

    def stop(self) -> None:
        """Say offline (retained) ourselves, since a clean disconnect does not fire the will: among
        several hubs on this hub's own topic first (the edges send again at once what it had not
        acknowledged), then on the tier's (the other hubs say online there again at once)."""
        if self._tier is not None:
            self._tier.stopping = True
        if self.state is LinkState.CONNECTED:
            _publish_and_wait(self._client, self._status_topic, self._status(online=False))
        self._client.disconnect()
        self._client.loop_stop()
        if self._tier is not None:
            self._tier.stop()

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    @property
    def taking_events(self) -> bool:
        """Whether this hub is subscribed to the edges' events (or will be on its next connect)."""
        return self._taking

    def take_events(self, taking: bool) -> None:
        """A hub of a group: subscribe to the shared events again (True) or leave them to the other hubs
        (False), and say so, retained, on this hub's own status topic and on the tier's: ``online`` there
        is what an edge reads as "takes events" (docs/protocol.md, "Several hubs"). Leaving, the
        unsubscribe goes before the offline, so the edges' resends that the offline sets off go to the
        others. A hub alone never leaves: its persistent session has the broker keep its events for it."""
        if not self._share_group:
            raise ValueError("a hub alone takes every event: its broker session keeps them while it cannot")
        with self._events_lock:
            if taking == self._taking:
                return
            self._taking = taking
            connected = self.state is LinkState.CONNECTED
            if connected:  # else its next connect subscribes as ``_taking`` says
                if taking:
                    self._client.subscribe(self._events_filter(), 1)
                else:
                    self._client.unsubscribe(self._events_filter())
                self._client.publish(self._status_topic, self._status(online=taking), qos=1, retain=True)
            if self._tier is not None and (connected or not taking):
                self._tier.say(online=taking)

    def _events_filter(self) -> str:
        events = topics.all_checkpoints(topics.TopicKind.EVENTS)
        return topics.shared(self._share_group, events) if self._share_group else events

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        """Publish from any thread, signed when the hub has a signing key (every topic: a broker cannot
        forge what the hub says; an empty payload, which clears a retained message, stays empty).
        ``on_delivered`` runs (in the MQTT thread) when the broker has it.

        paho's own locks are held while it calls ``on_publish``, so ours is never held while calling
        into paho (that order deadlocks). A PUBACK can therefore arrive before we have registered the
        callback; ``_early`` remembers such message ids, and whichever side comes second runs it.
        """
        if payload and self._sign is not None:
            payload = self._sign(payload)
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if on_delivered is None:
            return
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            return  # not queued by paho; the alert stays undispatched and is sent after a restart
        # paho keeps QoS>0 messages while disconnected and sends them after reconnecting.
        with self._lock:
            if self._early.pop(info.mid, None) is None:
                self._delivered[info.mid] = on_delivered
                return
        on_delivered()

    # -- paho callbacks (MQTT thread) -----------------------------------------------------------
    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        code = getattr(reason, "value", reason)
        if code != 0:
            self.last_error = f"broker refused the connection: {reason}"
            if code in REFUSED_FOR_GOOD:
                self.state = LinkState.REFUSED
                log.error("hub MQTT: %s; not retrying, fix the [mqtt] credentials", REFUSED_FOR_GOOD[code])
                client.disconnect()
                threading.Thread(target=client.loop_stop, daemon=True).start()
            else:
                log.warning("hub MQTT: %s", self.last_error)
            return
        with self._events_lock:
            taking = self._taking
            # Events are taken once, by one hub of the group, while it takes them (``take_events``);
            # statuses, evidence replies (for the hub that asked) and alarm receipts (kept idempotently,
            # pushed to each hub's consoles) go to every hub.
            client.subscribe(
                ([(self._events_filter(), 1)] if taking else [])
                + [
                    (topics.all_checkpoints(topics.TopicKind.STATUS), 1),
                    (topics.all_checkpoints(topics.TopicKind.EVIDENCE_REPLY), 1),
                    (topics.all_checkpoints(topics.TopicKind.RECEIPT), 1),
                ]
            )
            # The parameters before the birth: an edge that sees the hub online already knows its rules.
            client.publish(topics.hub_parameters(), self._parameters(), qos=1, retain=True)
            client.publish(self._status_topic, self._status(online=taking), qos=1, retain=True)
            self.state = LinkState.CONNECTED
            if self._tier is not None and taking:
                self._tier.say(online=True)
        self.last_error = None
        self.connected_event.set()
        log.info("hub MQTT connected to %s", self._url.geturl())
        if self._on_connected is not None:
            # Retained messages (the feed version) may be gone with a broker restarted without persistence.
            self._on_connected()

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        if self.state is not LinkState.REFUSED:
            self.state = LinkState.OFFLINE
            self.last_error = f"disconnected: {reason}"
            log.warning("hub MQTT %s", self.last_error)
        self.connected_event.clear()
        if self._tier is not None and not self._tier.stopping:
            # What this hub had taken and not acknowledged is gone with its clean session: offline on the
            # tier's topic makes r1 edges replay (another hub, if any, says online again at once).
            self._tier.say(online=False)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self._on_message_cb(message.topic, bytes(message.payload), time.time(), bool(message.retain))

    def _on_publish(
        self, client: paho.Client, userdata: object, mid: int, reason: object, properties: object
    ) -> None:
        with self._lock:
            callback = self._delivered.pop(mid, None)
            if callback is None:
                self._early[mid] = True
                if len(self._early) > _EARLY_KEEP:
                    del self._early[next(iter(self._early))]
        if callback is not None:
            callback()


def _client(
    client_id: str,
    clean_session: bool,
    tls: ssl.SSLContext | None,
    username: str | None,
    password: str | None,
    reconnect_min_s: float,
    reconnect_max_s: float,
) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, protocol=paho.MQTTv311
    )
    if tls is not None:
        client.tls_set_context(tls)
    if username:
        client.username_pw_set(username, password)
    client.reconnect_delay_set(max(1, int(reconnect_min_s)), max(1, int(reconnect_max_s)))
    return client


def _publish_and_wait(client: paho.Client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1, retain=True)
    try:
        info.wait_for_publish(timeout=2)
    except (RuntimeError, ValueError):
        pass


class _TierStatus:
    """The tier's status on ``cordon/v1/hub/status`` while several hubs share the events: the one hub
    status edges of release r1 know. MQTT gives a connection one last will, and each hub's own goes to its
    own topic, so this second connection (client id ``<id>-tier``) carries the will on the tier's topic.
    Online while this hub takes events; offline when it leaves them (``take_events``), stops, loses its
    main connection or dies. Any hub still taking events answers an offline there with online at once, so
    the topic stays online while any hub is up, and an r1 edge sees offline then online when a hub goes:
    it replays what it had in flight, as the edges of this release do on a hub's own will."""

    def __init__(
        self,
        client: paho.Client,
        status: Callable[..., bytes],
        taking_events: Callable[[], bool],
    ) -> None:
        self._client = client
        self._status = status
        self._taking_events = taking_events
        self.stopping = False
        self._connected = False
        client.will_set(topics.hub_status(), status(online=False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message

    def start(self, host: str, port: int, keepalive: int) -> None:
        self._client.connect_async(host, port, keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        if self._connected:
            _publish_and_wait(self._client, topics.hub_status(), self._status(online=False))
        self._client.disconnect()
        self._client.loop_stop()

    def say(self, *, online: bool) -> None:
        """Publish the tier's status (from any thread); nothing while this connection is down."""
        if self._connected and not (online and self.stopping):
            self._client.publish(topics.hub_status(), self._status(online=online), qos=1, retain=True)

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        code = getattr(reason, "value", reason)
        if code != 0:
            log.warning("hub MQTT (tier status): broker refused the connection: %s", reason)
            if code in REFUSED_FOR_GOOD:  # the main connection says so too, and stops
                client.disconnect()
                threading.Thread(target=client.loop_stop, daemon=True).start()
            return
        self._connected = True
        client.subscribe(topics.hub_status(), 1)
        if self._taking_events():
            self.say(online=True)

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        self._connected = False

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        # Another hub went (its will, or its goodbye): the tier is up while this one takes events.
        try:
            status = decode(HubStatus, signing.open_signed(bytes(message.payload), None, required=False))
        except (DecodeError, signing.SignatureError):
            return  # an empty payload clears the topic; anything else is no status of ours
        if not status.online and not self.stopping and self._taking_events():
            self.say(online=True)
