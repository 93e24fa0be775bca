"""Shared runtime pieces of edge and hub: no domain logic, no MQTT, no HTTP."""
