"""What every listener shares: the one callable its batches go to, the largest datagram, the counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Receive = Callable[[list[bytes]], None]  # takes every batch of datagrams (or TCP lines) read
MAX_DATAGRAM = 65535


@dataclass(slots=True)
class DatagramCounts:
    """What a datagram listener counts (statsd_exporter's udp_packets_total, unixgram_packets_total)."""

    packets: int = 0
