"""Scraping the protobuf exposition in tests: the Accept header promhttp negotiates, and the
length-delimited MetricFamily messages read back with the protobuf library."""

from __future__ import annotations

import math
import urllib.request

from bridge.exposition import metrics_pb2 as pb

ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"


def read_delimited(body: bytes) -> list[pb.MetricFamily]:
    """Length-delimited MetricFamily messages, parsed by the protobuf library."""
    families, position = [], 0
    while position < len(body):
        length, shift = 0, 0
        while True:
            byte = body[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        family = pb.MetricFamily()
        family.ParseFromString(body[position : position + length])
        families.append(family)
        position += length
    return families


def scrape_protobuf(url: str) -> dict[str, pb.MetricFamily]:
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/vnd.google.protobuf")
        return {family.name: family for family in read_delimited(response.read())}


def same(a: float, b: float, tolerance: float) -> bool:
    return math.isclose(a, b, rel_tol=tolerance) or (math.isnan(a) and math.isnan(b))
