"""The hub's record: its store (``store``: hub.db, numbered migrations in ``schema``), the day files of
plain reads and passages (``dayfiles``, behind the ``reads`` interface), plate patterns, retention."""
