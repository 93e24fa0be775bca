"""The hub's HTTP side: shared guards (``guards``), app keys (``keys``), the route policy and the
routes of every area (``policy``), and one module per area (console, records, audit, lists, ...)."""
