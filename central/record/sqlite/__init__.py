"""The hub's stores on SQLite: hub.db through one writer thread (``store``, numbered migrations in
``schema``) and the day files of plain reads and passages (``dayfiles``). Only this package imports
``sqlite3``, ``sqlite_utils`` or the writer; the rest of the hub sees the Protocols of
``central.record.stores``."""
