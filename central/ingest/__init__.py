"""Hub ingest: validate, store idempotently, match, commit, then acknowledge (``pipeline``); repeated
hits folded into one alert (``folding``); who gets an alert (``routing``); a 视图库's (GA/T 1400
platform's) records as reads, its subscription kept alive (``viid``)."""
