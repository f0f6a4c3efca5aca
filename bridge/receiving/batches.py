"""What every listener shares: the one callable its batches go to, the largest datagram, the counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

Receive = Callable[[list[bytes]], None]  # takes every batch of datagrams (or TCP lines) read
MAX_DATAGRAM = 65535


@dataclass(slots=True)
class DatagramCounts:
    """What a datagram listener counts (statsd_exporter's udp_packets_total, unixgram_packets_total, and
    the errors its socket reported: statsd_bridge_datagram_socket_errors_total)."""

    packets: int = 0
    socket_errors: int = 0


def _nothing_to_read() -> None:
    pass


class Listening(NamedTuple):
    """A datagram listener started: `stop` reads what the kernel holds and closes the socket; `read_now`
    reads what the kernel holds (for a few milliseconds at most) without waiting for the next readiness
    callback: a receiving worker asked for its hand-over, so that a line sent before a scrape is in it."""

    stop: Callable[[], None]
    read_now: Callable[[], None] = _nothing_to_read
