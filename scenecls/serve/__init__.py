"""``scenecls serve``: cameras watched continuously, a live web page, a JSON API,
server-sent events, Prometheus metrics and expected-label alerts (the kitchen pass)."""
