"""What happens to an alert after ingest committed it: dispatch to consoles and checkpoints
(``dispatch``), escalation when nobody answers, webhooks, and the evidence pictures asked of edges."""
