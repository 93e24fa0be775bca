"""The hub: takes every edge's events over MQTT, matches, keeps the record and dispatches alerts.

Subpackages by job, each importing only those listed before it (tests/test_layout.py): ``people``
(accounts, audit), ``record`` (the store), ``watchlists``, ``intel``, ``ingest``, ``alerts``, ``web``;
``app.py`` composes them from one ``HubSettings`` (``settings.py``); ``mqtt.py`` is the only MQTT module.
"""
