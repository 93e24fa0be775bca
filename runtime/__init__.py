"""What edge and hub both run that is not domain logic: the SQLite writer thread, settings loading,
dead letters, live WebSocket fan-out, the HTTP plumbing (route policy, sessions, security headers,
OpenAPI, metrics, the shared browser scripts) and the TLS contexts of the MQTT and HTTPS clients.

The MQTT clients themselves live one per side (``edge/uplink.py``, ``central/mqtt.py``).
"""
