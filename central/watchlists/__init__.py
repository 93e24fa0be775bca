"""Watchlists at the hub: lists and the field feed (``lists``), the live matching index (``index``),
list files in and out (``files``: CSV/JSON parse, check, export, diff) and upstream sources."""
