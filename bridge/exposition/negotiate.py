"""Which format a scraper gets, from its Accept header, as client_golang's promhttp picks it."""

from __future__ import annotations

from bridge.exposition import protobuf as protobuf_format


def negotiate(accept: str, openmetrics: bool = False) -> str:
    """The format to answer an Accept header with, as client_golang's promhttp picks it: the first
    format it serves in order of q. "protobuf" (delimited), "protobuf-text", "openmetrics" (only when
    enabled) or "text", which is also the answer when nothing else fits."""
    offers = []
    for position, entry in enumerate(accept.split(",")):
        media, *parameters = (part.strip() for part in entry.split(";"))
        params = dict(p.partition("=")[::2] for p in parameters if "=" in p)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        offers.append((-quality, position, media.lower(), params))
    for _, _, media, params in sorted(offers):
        if media == protobuf_format.MEDIA_TYPE and params.get("proto") == protobuf_format.PROTO:
            encoding = params.get("encoding", "")
            if encoding in ("delimited", "text"):
                return "protobuf" if encoding == "delimited" else "protobuf-text"
        elif media == "text/plain" and params.get("version", "0.0.4") == "0.0.4":
            return "text"
        elif media == "application/openmetrics-text" and openmetrics:
            return "openmetrics"
    return "text"
