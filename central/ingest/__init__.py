"""Hub ingest: validate, store idempotently, match, commit, then acknowledge (``pipeline``); repeated
hits folded into one alert (``folding``); who gets an alert (``routing``)."""
