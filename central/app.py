"""Composition root of the hub: everything is built here from one HubSettings."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from central import lifecycle
from central.alerts.dispatch import AlertDispatcher
from central.alerts.evidence import EvidenceBroker
from central.alerts.relay import kit_frame
from central.alerts.webhooks import WebhookSender
from central.ingest.pipeline import Ingest
from central.ingest.routing import Router
from central.ingest.viid import ViidPlatform
from central.intel.clones import CloneCheck, learns_from_others, load_geography
from central.mqtt import HubLink, OnMessage
from central.people import visibility
from central.people.users import Directory
from central.record import factory
from central.record.duties import DutyKeeper
from central.settings import HubSettings
from central.watchlists.feedfiles import FeedFiles
from central.watchlists.index import HubWatchlists
from central.watchlists.lists import ListService
from central.watchlists.upstream import UpstreamSource
from central.web import console as hub_console
from central.web import keys
from central.web import policy as hub_policy
from central.web import users as web_users
from central.web.audit import audit_login
from central.web.unavailable import store_unavailable
from protocols import feedfile, signing, topics
from protocols.messages import Alert, AlertOutcome, CheckpointStatus, KitResultEvent
from runtime import signkeys
from runtime.config import SettingsError
from runtime.fanout import Fanout
from runtime.tls import mqtt_endpoint
from runtime.web import Principal, Sessions, add_login_routes, make_middlewares, token_matches

log = logging.getLogger(__name__)


def create_app(settings: HubSettings) -> web.Application:
    """Build the hub web app; the store, watchlists and broker link start with the app."""
    store = factory.open_store(settings)
    console = Fanout()
    directory = Directory(store.users.directory)
    # One key for every hub behind a front door (console.session_key_file), or a new one at each start.
    sessions = Sessions(settings.console.session_key() or secrets.token_bytes(32))
    middlewares = make_middlewares(
        hub_policy.POLICY,
        sessions,
        _machine_tokens(settings, directory),
        still_valid=directory.still_valid,
        edge_certificates=bool(settings.http.ca_file),
    )
    # inside the security headers, around authorization (it asks the store whether a session is still valid)
    middlewares.insert(1, store_unavailable)
    app = web.Application(client_max_size=settings.http.max_body_bytes, middlewares=middlewares)
    app[keys.SETTINGS] = settings
    app[keys.POLICY] = hub_policy.POLICY
    app[keys.STORE] = store
    app[keys.DIRECTORY] = directory
    app[keys.CONSOLE] = console
    app[keys.CHECKPOINTS] = {}
    app[keys.SOCKETS] = set()
    app[keys.WATCHLISTS] = HubWatchlists()
    app[keys.PURGED_DAYS] = []

    m = settings.mqtt
    link_ref: list[HubLink] = []

    hub_key = signkeys.private_key(settings.signing.key_file) if settings.signing.key_file else None

    def publish(topic: str, payload: bytes, qos: int = 1, retain: bool = False, on_delivered=None) -> None:  # noqa: ANN001
        # The link signs every message it publishes (acks, alerts, deltas, accounts, evidence requests).
        link_ref[0].publish(topic, payload, qos=qos, retain=retain, on_delivered=on_delivered)

    # Work that runs once among the hubs on one database: each a duty, run while this hub holds it.
    keeper = DutyKeeper(factory.open_duties(settings), settings.cluster.duty_beat_s)
    app[keys.DUTIES] = keeper
    webhooks = WebhookSender(store, settings.webhooks, active=False)
    restricted = visibility.restricted_in(lambda: app[keys.WATCHLISTS].lists)
    dispatcher = AlertDispatcher(store, publish, console, webhooks, restricted=restricted)
    ingest = Ingest(
        store,
        app[keys.WATCHLISTS],
        publish=lambda topic, payload: publish(topic, payload),
        listener=HubEvents(app, dispatcher),
        max_skew_s=settings.clock.max_skew_s,
        edge_keys=signkeys.PublicKeys(settings.signing.keys_dir) if settings.signing.keys_dir else None,
        signatures_required=settings.signing.required,
        clones=_clone_check(settings),
        router=Router(settings.routing, restricted=restricted),
        fold_window_s=settings.alerts.fold_window_s,
        # the clone check learns the reads other hubs took while any other hub is alive on the store, and
        # for a day after the last one was seen (what it committed stays in the store, in no one's index)
        clones_shared=(
            (lambda: learns_from_others(keeper.store.others, keeper.store.company_at, time.monotonic()))
            if keeper.store.shared
            else False
        ),
    )
    evidence = EvidenceBroker(
        factory.open_evidence(settings),
        publish,
        edge_keys=signkeys.PublicKeys(settings.signing.keys_dir) if settings.signing.keys_dir else None,
        signatures_required=settings.signing.required,
        wait_s=settings.evidence.wait_s,
    )
    app[keys.EVIDENCE] = evidence
    _, _, mqtt_tls = mqtt_endpoint(m.url, m.ca_file, m.cert_file, m.key_file)  # bad files stop start-up here
    link = HubLink(
        m.url,
        m.client_id,
        m.username,
        m.password,
        m.keepalive_s,
        tls=mqtt_tls,
        sign=(lambda body: signing.sign(body, hub_key)) if hub_key is not None else None,
        fold_window_s=settings.alerts.fold_window_s,
        share_group=m.share_group,
        on_message=_messages_to(ingest, evidence),
        reconnect_min_s=m.reconnect_min_s,
        reconnect_max_s=m.reconnect_max_s,
        on_connected=lambda: _on_connected(app),
    )
    link_ref.append(link)
    app[keys.LISTS] = ListService(store, app[keys.WATCHLISTS], publish, feed_duty=True)
    feed_files = FeedFiles(
        store,
        settings.data_path / "feed",
        sign=(lambda digest: feedfile.sign_digest(digest, hub_key)) if hub_key is not None else None,
        sign_body=(lambda body: signing.sign(body, hub_key)) if hub_key is not None else None,
        rebuild_versions=settings.feed.file_rebuild_versions,
        rebuild_s=settings.feed.file_rebuild_s,
        current_version=lambda: app[keys.WATCHLISTS].index.feed_version,
    )
    app[keys.LISTS].on_version.append(lambda version: feed_files.poke())
    app[keys.FEED_FILES] = feed_files
    app[keys.INGEST] = ingest
    app[keys.DISPATCHER] = dispatcher
    app[keys.LINK] = link

    app[keys.LOGIN_LIMITS] = factory.open_login_limits(settings)
    app[keys.IMPORT_JOBS] = factory.open_import_jobs(settings)
    add_login_routes(
        app,
        sessions,
        hub_console.console_login(settings.console.token, directory),
        on_login=audit_login,
        limiter=app[keys.LOGIN_LIMITS],
    )
    hub_policy.add_routes(app)
    app[keys.UPSTREAM] = [UpstreamSource(u) for u in settings.upstream]
    lifecycle.add_duties(app, keeper)
    try:
        app[keys.VIID_PLATFORMS] = [ViidPlatform(p) for p in settings.viid]
    except ValueError as exc:  # a secret file that cannot be read stops start-up, naming the key
        raise SettingsError(str(exc)) from None
    lifecycle.run_parts(app)
    return app


def _clone_check(settings: HubSettings) -> CloneCheck | None:
    """The clone check, or None when off; a bad checkpoints or distances file stops start-up here."""
    if not settings.clones.enabled:
        return None
    return CloneCheck(
        settings.clones, load_geography(settings.clones), settings.record.utc_offset, settings.time_zone
    )


def _machine_tokens(settings: HubSettings, directory: Directory):  # noqa: ANN202 - returns the token checker
    def check(token: str) -> Principal | None:
        if token_matches(token, settings.feed.token):
            return Principal("edge", "edge")
        if token_matches(token, settings.metrics.token):
            return Principal("metrics", "metrics")
        return directory.by_token(token)  # an account's API token acts with the account's role

    return check


class HubEvents:
    """The hub's ``IngestListener`` (central/ingest/listener.py): alerts, folds and pictures to the
    dispatcher; the rest to the event loop, for the consoles (called from the writer thread)."""

    def __init__(self, app: web.Application, dispatcher: AlertDispatcher) -> None:
        self.app = app
        self.dispatcher = dispatcher

    def _on_loop(self, handler: Callable[[web.Application, Any], None], what: Any) -> None:
        self.app[keys.LOOP].call_soon_threadsafe(handler, self.app, what)

    def alerts_raised(self, alerts: list[Alert]) -> None:
        self.dispatcher.submit_threadsafe(alerts)

    def alerts_folded(self, alerts: list[Alert]) -> None:
        self.dispatcher.submit_folded_threadsafe(alerts)

    def status_changed(self, status: CheckpointStatus, clock_offset_s: float | None) -> None:
        _on_status_threadsafe(self.app, status, clock_offset_s)

    def outcomes_recorded(self, outcomes: list[tuple[str, AlertOutcome]]) -> None:
        self._on_loop(_on_outcomes, outcomes)

    def pictures_arrived(self, alerts: list[Alert]) -> None:
        self.dispatcher.pictures_threadsafe(alerts)

    def kits_recorded(self, kits: list[tuple[str, KitResultEvent]]) -> None:
        self._on_loop(_on_kits, kits)

    def receipts_recorded(self, receipts: list[dict[str, Any]]) -> None:
        self._on_loop(_on_receipts, receipts)


def _messages_to(ingest: Ingest, evidence: EvidenceBroker) -> OnMessage:
    """The link's messages to their part, by the topic's kind (protocols/topics.py): an edge's evidence
    reply to the evidence broker, everything else to ingest (which dead-letters what is no Cordon topic)."""

    def on_message(topic: str, payload: bytes, received_at: float, retained: bool = False) -> object:
        try:
            kind = topics.parse(topic).kind
        except topics.TopicError:
            kind = None
        to = evidence.handle_threadsafe if kind is topics.TopicKind.EVIDENCE_REPLY else ingest.handle
        return to(topic, payload, received_at, retained)

    return on_message


def _on_outcomes(app: web.Application, outcomes: list[tuple[str, AlertOutcome]]) -> None:
    """Officers recorded what came of alerts: every console sees it at once."""
    for checkpoint, outcome in outcomes:
        app[keys.DISPATCHER].give({"type": "outcome", "outcome": outcome_frame(checkpoint, outcome)})


def _on_kits(app: web.Application, kits: list[tuple[str, KitResultEvent]]) -> None:
    """Quick-test results arrived: every console sees them; a positive or invalid one, or a subject on a
    person list, is flagged as an alert in the frame (the console raises it)."""
    for checkpoint, event in kits:
        # Through the dispatcher: the relay's copy of it (AlertRelay.kits) is not given again.
        app[keys.DISPATCHER].give(
            {"type": "kit", "kit": kit_frame(checkpoint, event.result, event.person_hits)}
        )


def _on_receipts(app: web.Application, receipts: list[dict[str, object]]) -> None:
    """A checkpoint's tablet showed an alarm, or an officer acknowledged it: every console sees the receipt."""
    for receipt in receipts:
        app[keys.DISPATCHER].give({"type": "receipt", "receipt": receipt})


def outcome_frame(checkpoint: str, outcome: AlertOutcome) -> dict[str, object]:
    return {
        "alert_id": outcome.alert_id,
        "checkpoint": checkpoint,
        "outcome": outcome.outcome,
        "note": outcome.note,
        "officer": outcome.officer,
        "acknowledged_at": outcome.acknowledged_at,
    }


def _on_connected(app: web.Application) -> None:
    """On every broker connect (paho's thread): the retained feed version (from the hub that publishes the
    feed, on the event loop where the feed's versions move) and officer accounts."""
    app[keys.LOOP].call_soon_threadsafe(app[keys.LISTS].feed.on_connected)
    web_users.publish_accounts(app)


def _on_status_threadsafe(app: web.Application, status: CheckpointStatus, offset: float | None) -> None:
    app[keys.LOOP].call_soon_threadsafe(lifecycle.on_status, app, status, offset)
