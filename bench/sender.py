"""Send StatsD datagrams over UDP at a paced rate, in a process of its own; print what was sent as JSON.

python bench/sender.py --port 9125 --rate 100000 --seconds 2 --load batched
"""

from __future__ import annotations

import argparse
import json
import math
import random
import socket
import struct
import time

SERIES = 1000
TAGS = ("env:prod", "region:eu-west-1")


def counter_lines(series: int = SERIES) -> list[str]:
    """One line per series: a counter with three DogStatsD tags, each adding 1."""
    return [f"bench.counter{i}:1|c|#{TAGS[0]},{TAGS[1]},host:h{i % 50}" for i in range(series)]


def mixed_lines(series: int = SERIES) -> list[str]:
    """Counters, gauge increments and timers through the glob and regex rules of bench/mapping.yml.

    Every line adds exactly 1 to what the bridge exposes (a counter, a gauge, or a histogram's
    _count), so lines lost can be read off the scrape.
    """
    lines = []
    for i in range(series):
        rule = i % 110
        if rule < 100:  # glob rules: app<rule>.<name>.<kind>
            kind = ("c", "g", "ms")[i % 3]
            value = {"c": "1", "g": "+1", "ms": str(5 + i % 200)}[kind]
            lines.append(f"app{rule}.op{i % 10}.{kind}:{value}|{kind}|#host:h{i % 50}")
        else:  # regex rules: svc-<rule>--<name>.latency
            lines.append(f"svc-{rule - 100}--op{i % 10}.latency:{5 + i % 200}|ms|#host:h{i % 50}")
    return lines


def production_datagrams(series: int = 50_000, lines: int = 400_000, seed: int = 7) -> list[bytes]:
    """Traffic shaped like a fleet's: 50k series of Zipf-skewed popularity, varied values, mixed clients.

    - series: requests counters (50 %), latency timers (35 %) and queue gauges (15 %) of 400 services,
      DogStatsD-tagged (env, region, host, and status for requests) but for a fifth sent untagged, as
      plain StatsD clients do;
    - values: counter increments mostly 1, else 2-20; timers log-normal around 40 ms; gauges random-walk;
    - popularity: Zipf (s = 1.1): a few series take most lines, most are seen rarely;
    - datagrams: 60 % of lines alone (unbuffered clients: python `statsd`, `datadog` without buffering),
      the rest packed up to 1,432 bytes (buffered clients: `datadog`'s default, hot-shots' maxBufferSize).
    The lines vary, so the exact-line cache sees repeats only as often as a real fleet would send them.
    """
    rng = random.Random(seed)
    kinds = ["c"] * 10 + ["ms"] * 7 + ["g"] * 3
    catalogue = []
    for i in range(series):
        kind = kinds[i % len(kinds)]
        metric = {"c": "requests", "ms": "latency", "g": "queue_depth"}[kind]
        name = f"app.svc{i % 400}.ep{(i // 400) % 40}.{metric}"
        tags = "" if i % 5 == 4 else f"|#env:prod,region:r{i % 3},host:h{i % 125}"
        if tags and kind == "c":
            tags += f",status:{(200, 200, 200, 404, 500)[i % 5]}"
        catalogue.append((name, kind, tags))
    cumulative, total = [], 0.0
    for rank in range(1, series + 1):
        total += 1.0 / rank**1.1
        cumulative.append(total)
    order = list(range(series))
    rng.shuffle(order)  # popularity by rank, not by name
    gauges: dict[int, int] = {}
    out: list[str] = []
    for pick in rng.choices(order, cum_weights=cumulative, k=lines):
        name, kind, tags = catalogue[pick]
        if kind == "c":
            value = "1" if rng.random() < 0.7 else str(rng.randint(2, 20))
        elif kind == "ms":
            value = f"{rng.lognormvariate(math.log(40), 0.9):.2f}"
        else:
            gauges[pick] = max(0, gauges.get(pick, 50) + rng.randint(-3, 3))
            value = str(gauges[pick])
        out.append(f"{name}:{value}|{kind}{tags}")
    packed, position = [], 0
    while position < len(out):
        if rng.random() < 0.6:
            packed.append(out[position].encode())
            position += 1
            continue
        batch, size = [], 0
        while position < len(out) and size + len(out[position]) + 1 <= 1432:
            batch.append(out[position])
            size += len(out[position]) + 1
            position += 1
        packed.append("\n".join(batch).encode())
    return packed


LOADS = {
    "batched": (counter_lines, 30),
    "single": (counter_lines, 1),
    "mixed": (mixed_lines, 30),
}


def datagrams(load: str) -> list[bytes]:
    if load == "production":
        return production_datagrams()
    make_lines, per_datagram = LOADS[load]
    lines = make_lines()
    # several rounds, so that a datagram's lines are not always the same series
    rounds = [lines[k:] + lines[:k] for k in range(0, len(lines), 7)][:per_datagram]
    flat = [line for round_ in rounds for line in round_]
    return ["\n".join(flat[i : i + per_datagram]).encode() for i in range(0, len(flat), per_datagram)]


def send(host: str, port: int, rate: float, seconds: float, load: str) -> dict:
    payloads = datagrams(load)
    per_datagram = sum(payload.count(b"\n") + 1 for payload in payloads) / len(payloads)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    datagram_rate = rate / per_datagram
    sent = 0
    errors = 0
    count = len(payloads)
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        due = int((now - start) * datagram_rate) + 1
        while sent < due:
            try:
                sock.sendto(payloads[sent % count], (host, port))
            except OSError:
                errors += 1  # ENOBUFS and the like: the line never left, so it is not counted as sent
                sent += 1
                continue
            sent += 1
        now = time.perf_counter()
    elapsed = time.perf_counter() - start
    delivered = sent - errors
    return {
        "lines": round(delivered * per_datagram),
        "datagrams": delivered,
        "send_errors": errors,
        "seconds": elapsed,
        "achieved_rate": delivered * per_datagram / elapsed,
    }


def dump(load: str, path: str) -> None:
    """Write the load's datagrams for bench/blast.c: (uint32 length, uint32 lines, bytes) records."""
    with open(path, "wb") as out:
        for payload in datagrams(load):
            out.write(struct.pack("<II", len(payload), payload.count(b"\n") + 1) + payload)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--rate", type=float, help="lines per second")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--load", choices=[*sorted(LOADS), "production"], default="batched")
    parser.add_argument("--dump", metavar="FILE", help="write the load's datagrams for bench/blast.c, send nothing")
    args = parser.parse_args()
    if args.dump:
        dump(args.load, args.dump)
        return
    if args.port is None or args.rate is None:
        parser.error("--port and --rate are needed to send")
    print(json.dumps(send(args.host, args.port, args.rate, args.seconds, args.load)))


if __name__ == "__main__":
    main()
