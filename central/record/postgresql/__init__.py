"""The hub's store on PostgreSQL: numbered migrations (``schema``), a small pool of read connections
(``connections``), and the record of plain reads and passages partitioned by day (``reads``)."""
