"""Which format a scraper gets, and how its names are escaped, from its Accept header, as client_golang's
promhttp picks them."""

from __future__ import annotations

from bridge.exposition import protobuf as protobuf_format
from bridge.exposition.escaping import SCHEMES


def negotiate(accept: str, openmetrics: bool = False) -> tuple[str, str]:
    """The format to answer an Accept header with, as client_golang's promhttp picks it: the first
    format it serves in order of q. "protobuf" (delimited), "protobuf-text", "openmetrics" (only when
    enabled) or "text", which is also the answer when nothing else fits.

    With it the escaping scheme, as prometheus/common's Negotiate reads it: the last known `escaping=`
    among the entries looked at up to the one that fits (all of them when none does), whatever their
    media type; "" when the scraper named none (Prometheus 2): it gets underscores, unnamed in the
    Content-Type, as it did before the bridge negotiated escaping."""
    offers = []
    for position, entry in enumerate(accept.split(",")):
        media, *parameters = (part.strip() for part in entry.split(";"))
        pairs = (p.partition("=") for p in parameters if "=" in p)
        params = {name.strip(): value.strip() for name, _, value in pairs}
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        offers.append((-quality, position, media.lower(), params))
    escaping = ""
    for _, _, media, params in sorted(offers):
        if params.get("escaping") in SCHEMES:
            escaping = params["escaping"]
        if media == protobuf_format.MEDIA_TYPE and params.get("proto") == protobuf_format.PROTO:
            encoding = params.get("encoding", "")
            if encoding in ("delimited", "text"):
                return ("protobuf" if encoding == "delimited" else "protobuf-text"), escaping
        elif media == "text/plain" and params.get("version", "0.0.4") == "0.0.4":
            return "text", escaping
        elif media == "application/openmetrics-text" and openmetrics:
            return "openmetrics", escaping
    return "text", escaping
