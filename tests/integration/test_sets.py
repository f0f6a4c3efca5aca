"""StatsD sets through a real bridge over UDP, with one process and with two receiving workers: a mapping's
set_window makes a gauge of the distinct values of a sliding window, the same for every scraper of one
moment; without it, sets are refused as statsd_exporter refuses them."""

import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import sample, start_bridge

pytestmark = pytest.mark.usefixtures("each_worker_count")

WINDOW = 3.0
MAPPING = f"""
mappings:
- match: users.*
  name: users_seen
  labels:
    page: $1
  set_window: {WINDOW:g}s
"""


def seen(samples: dict) -> float | None:
    return sample(samples, "users_seen", page="home")


def test_a_set_counts_distinct_members_for_every_scraper_alike_then_forgets_them(tmp_path):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(MAPPING)
    bridge = start_bridge(f"--statsd.mapping-config={mapping}")
    try:
        members = [f"user-{i}" for i in range(40)]
        # each member many times, from several sockets: with workers, each sees some of every member
        for _ in range(5):
            bridge.send_udp("\n".join(f"users.home:{member}|s" for member in members))
        sent = time.monotonic()
        assert bridge.wait_for(lambda s: seen(s) == len(members)) is not None
        assert "# TYPE users_seen gauge" in bridge.metrics()

        # several scrapers at one moment read one number; none resets it
        answers: list[float | None] = []
        scrapers = [threading.Thread(target=lambda: answers.append(seen(bridge.samples()))) for _ in range(4)]
        for scraper in scrapers:
            scraper.start()
        for scraper in scrapers:
            scraper.join()
        assert answers == [len(members)] * 4

        # a window after the last line, the members are gone; a new one counts alone
        time.sleep(max(0.0, sent + WINDOW + 0.5 - time.monotonic()))
        assert seen(bridge.samples()) == 0
        bridge.send_udp("users.home:newcomer|s")
        assert bridge.wait_for(lambda s: seen(s) == 1) is not None
        samples = bridge.samples()
        assert sample(samples, "statsd_bridge_events_total", type="set") == 5 * len(members) + 1
        assert not [key for key in samples if key[0] == "statsd_bridge_sample_errors_total"]
    finally:
        assert bridge.stop() == 0


def test_without_set_window_sets_are_refused_as_set_unsupported():
    bridge = start_bridge()
    try:
        bridge.send_udp("users.home:alice|s\nusers.home:bob|s|#env:prod")
        samples = bridge.wait_for(
            lambda s: sample(s, "statsd_bridge_sample_errors_total", reason="set_unsupported") == 2
        )
        assert samples is not None
        assert not [key for key in samples if key[0].startswith("users")]
        assert sample(samples, "statsd_bridge_events_total", type="set") is None
    finally:
        assert bridge.stop() == 0


def test_a_bridge_imports_datasketches_only_when_a_set_needs_a_sketch():
    """It brings numpy: every process, workers too, would pay its memory for sets that may never pass the
    exact bound."""
    code = (
        "import sys, bridge.daemon, bridge.workers.process\n"
        "print(sorted({'numpy', 'datasketches'} & set(sys.modules)))\n"
        "from bridge.series.distinct import EXACT_LIMIT, DistinctWindow\n"
        "window = DistinctWindow(10.0)\n"
        "for value in range(EXACT_LIMIT + 1): window.add(value, 0.0)\n"
        "print(sorted({'numpy', 'datasketches'} & set(sys.modules)))\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert ran.stdout.splitlines() == ["[]", "['datasketches', 'numpy']"]
