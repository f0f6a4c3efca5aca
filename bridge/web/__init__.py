"""Web: the HTTP/1.1 server on the event loop (the only code that knows HTTP), the pages it serves, the
exporter-toolkit web config (TLS, basic auth, headers, rate limit) and the status page."""
