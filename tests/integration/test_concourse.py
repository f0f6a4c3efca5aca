"""mappings/concourse.yml against the seed: what Concourse's DogStatsD emitter sends, what the native
Prometheus emitter would expose, through a real bridge process. Then the reaper, end to end."""

import time
from pathlib import Path

import pytest

from tests.conftest import assert_exposition_parses, sample

# one process, and two receiving workers with the same answers
pytestmark = pytest.mark.usefixtures("each_worker_count")

CONCOURSE = str(Path(__file__).resolve().parents[2] / "mappings" / "concourse.yml")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BUILD_BUCKETS = (1, 60, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, 18000, 36000)
WAIT_BUCKETS = (1, 15, 30, 60, 120, 180, 240, 300, 600, 1200)


def line(event: str, value: float, prefix: str, **tags: str) -> str:
    """One event as Concourse's DogStatsD emitter writes it: a gauge, event_host first, attributes after."""
    tag_text = ",".join(["event_host:web-1", *(f"{k}:{v}" for k, v in tags.items())])
    return f"{prefix}{event}:{value:g}|g|#{tag_text}"


def histogram(name: str, buckets: tuple, observations: list[float], **labels: str) -> dict:
    expected = {}
    for bound in buckets:
        expected[(f"{name}_bucket", frozenset({**labels, "le": f"{bound:g}"}.items()))] = sum(
            o <= bound for o in observations
        )
    expected[(f"{name}_bucket", frozenset({**labels, "le": "+Inf"}.items()))] = len(observations)
    expected[(f"{name}_count", frozenset(labels.items()))] = len(observations)
    expected[(f"{name}_sum", frozenset(labels.items()))] = pytest.approx(sum(observations))
    return expected


def one(name: str, value: float, **labels: str) -> dict:
    return {(name, frozenset(labels.items())): value}


BUILD = {"team_name": "main", "pipeline": "p1", "job": "unit"}
BUILD_LABELS = {"team": "main", "pipeline": "p1", "job": "unit"}

# (case, events as (event name, value, tags), every concourse_* sample the seed would expose)
CASES = [
    ("error log", [("error_log", 1, {"message": "boom"}), ("error_log", 7, {"message": "boom"})],
     one("concourse_error_logs", 2, message="boom")),
    ("error log without message is skipped", [("error_log", 1, {})], {}),
    ("lock held and released", [("lock_held", 1, {"type": "batch"}), ("lock_held", 1, {"type": "batch"}),
                                ("lock_held", 0, {"type": "batch"})],
     one("concourse_locks_held", 1, type="batch")),
    ("lock without type is skipped", [("lock_held", 1, {})], {}),
    ("jobs scheduled", [("jobs_scheduled", 3, {}), ("jobs_scheduled", 2, {})],
     one("concourse_jobs_scheduled_total", 5)),
    ("jobs scheduling", [("jobs_scheduling", 3, {}), ("jobs_scheduling", 2, {})], one("concourse_jobs_scheduling", 2)),
    ("builds started", [("builds_started", 4, {})], one("concourse_builds_started_total", 4)),
    ("builds running", [("builds_running", 6, {})], one("concourse_builds_running", 6)),
    ("concurrent requests limit hit", [("concurrent_requests_limit_hit", 2, {"action": "ListAllJobs"})],
     one("concourse_concurrent_requests_limit_hit_total", 2, action="ListAllJobs")),
    ("concurrent requests without action", [("concurrent_requests", 5, {})],
     one("concourse_concurrent_requests", 5, action="")),
    ("tasks waiting", [("tasks_waiting", 3, {"teamId": "1", "workerTags": "gpu", "platform": "linux"})],
     one("concourse_tasks_waiting", 3, teamId="1", workerTags="gpu", platform="linux")),
    ("tasks waiting duration", [("tasks_waiting_duration", 20, {"teamId": "1", "platform": "linux"}),
                                ("tasks_waiting_duration", 700, {"teamId": "1", "platform": "linux"})],
     histogram("concourse_tasks_wait_duration", WAIT_BUCKETS, [20, 700], teamId="1", workerTags="",
               platform="linux")),
    ("build finished, succeeded", [("build_finished", 90000, {**BUILD, "build_status": "succeeded"})],
     {**one("concourse_builds_finished_total", 1),
      **one("concourse_builds_finished", 1, **BUILD_LABELS, status="succeeded"),
      **one("concourse_builds_succeeded_total", 1),
      **histogram("concourse_builds_duration_seconds", BUILD_BUCKETS, [90], **BUILD_LABELS)}),
    ("build finished, each status", [("build_finished", 1000, {**BUILD, "build_status": status})
                                     for status in ("aborted", "failed", "errored", "errored", "pending")],
     {**one("concourse_builds_finished_total", 5),
      **{k: v for status, n in (("aborted", 1), ("failed", 1), ("errored", 2), ("pending", 1))
         for k, v in one("concourse_builds_finished", n, **BUILD_LABELS, status=status).items()},
      **one("concourse_builds_aborted_total", 1),
      **one("concourse_builds_failed_total", 1),
      **one("concourse_builds_errored_total", 2),
      **histogram("concourse_builds_duration_seconds", BUILD_BUCKETS, [1, 1, 1, 1, 1], **BUILD_LABELS)}),
    ("build finished without job counts only the total", [("build_finished", 1000, {"team_name": "main",
                                                                                    "pipeline": "p1",
                                                                                    "build_status": "failed"})],
     one("concourse_builds_finished_total", 1)),
    ("worker containers", [("worker_containers", 12, {"worker": "w1", "platform": "linux", "team_name": "main",
                                                      "tags": "gpu"})],
     one("concourse_workers_containers", 12, worker="w1", platform="linux", team="main", tags="gpu")),
    ("worker containers, no tags attribute", [("worker_containers", 2, {"worker": "w1", "platform": "linux",
                                                                        "team_name": "main"})],
     one("concourse_workers_containers", 2, worker="w1", platform="linux", team="main", tags="")),
    ("worker containers with empty platform is skipped", [("worker_containers", 2, {"worker": "w1",
                                                                                    "team_name": "main"})], {}),
    ("worker volumes", [("worker_volumes", 30, {"worker": "w1", "platform": "linux", "team_name": "main"})],
     one("concourse_workers_volumes", 30, worker="w1", platform="linux", team="main", tags="")),
    ("worker unknown containers", [("worker_unknown_containers", 3, {"worker": "w1"})],
     one("concourse_workers_unknown_containers", 3, worker="w1")),
    ("worker unknown volumes", [("worker_unknown_volumes", 4, {"worker": "w1"})],
     one("concourse_workers_unknown_volumes", 4, worker="w1")),
    ("worker tasks", [("worker_tasks", 5, {"worker": "w1", "platform": "linux"})],
     one("concourse_workers_tasks", 5, worker="w1", platform="linux")),
    ("worker state", [("worker_state", 2, {"state": "running"}), ("worker_state", 1, {"state": "stalled"})],
     {**one("concourse_workers_registered", 2, state="running"),
      **one("concourse_workers_registered", 1, state="stalled")}),
    ("http response time", [("http_response_time", 320, {"route": "GetBuild", "method": "GET", "status": "200"})],
     histogram("concourse_http_responses_duration_seconds", DEFAULT_BUCKETS, [0.32], method="GET",
               route="GetBuild", status="200")),
    ("database queries", [("database_queries", 120, {})], one("concourse_db_queries_total", 120)),
    ("database connections", [("database_connections", 8, {"ConnectionName": "api"})],
     one("concourse_db_connections", 8, dbname="api")),
    ("checks finished", [("checks_finished", 2, {"status": "succeeded"})],
     one("concourse_lidar_checks_finished_total", 2, status="succeeded")),
    ("checks started", [("checks_started", 5, {})], one("concourse_lidar_checks_started_total", 5)),
    ("checks enqueued", [("checks_enqueued", 6, {})], one("concourse_lidar_checks_enqueued_total", 6)),
    ("checks queue size", [("checks_queue_size", 7, {})], one("concourse_lidar_check_queue_size", 7)),
    ("volumes streamed", [("volumes_streamed", 3, {})], one("concourse_volumes_volumes_streamed", 3)),
    ("unknown events are dropped", [("scheduling_load", 3, {}), ("gc_duration", 1, {})], {}),
]  # fmt: skip


def concourse_samples(samples: dict) -> dict:
    return {key: value for key, value in samples.items() if key[0].startswith("concourse_")}


@pytest.mark.parametrize("prefix", ["", "concourse."])
@pytest.mark.parametrize(("events", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_seed_metric(bridge_factory, prefix, events, expected):
    bridge = bridge_factory("--mapping-config", CONCOURSE)
    payload = "\n".join(line(event, value, prefix, **tags) for event, value, tags in events)
    bridge.send_udp(payload)
    # lines are counted as they start through the pipeline: wait for the series as well (a loaded
    # machine can scrape between the two)
    samples = bridge.wait_for(
        lambda s: sample(s, "statsd_bridge_lines_total") == len(events) and concourse_samples(s) == expected
    )
    assert samples is not None, (expected, bridge.metrics())
    assert concourse_samples(samples) == expected
    assert_exposition_parses(bridge.metrics())


def test_skips_are_counted_with_metric_and_tag(bridge_factory):
    bridge = bridge_factory("--mapping-config", CONCOURSE)
    bridge.send_udp(
        line("worker_containers", 2, "", worker="w1", team_name="main"),
        line("build_finished", 5, "", team_name="t", pipeline="p", build_status="failed"),
    )
    samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_lines_total") == 2)
    assert (
        sample(
            samples, "statsd_bridge_events_skipped_total", metric_name="concourse_workers_containers", tag="platform"
        )
        == 1
    )
    assert (
        sample(samples, "statsd_bridge_events_skipped_total", metric_name="concourse_builds_finished", tag="job") == 1
    )


def worker_lines(worker: str) -> list[str]:
    return [
        line("worker_containers", 3, "", worker=worker, platform="linux", team_name="main"),
        line("worker_volumes", 4, "", worker=worker, platform="linux", team_name="main"),
        line("worker_unknown_containers", 1, "", worker=worker),
        line("worker_unknown_volumes", 2, "", worker=worker),
        line("worker_tasks", 5, "", worker=worker, platform="linux"),
    ]


def series_of(samples: dict, worker: str) -> set[str]:
    return {name for name, labels in samples if ("worker", worker) in labels}


def test_reaper_drops_every_series_of_a_silent_worker(bridge_factory):
    bridge = bridge_factory("--mapping-config", CONCOURSE, "--reap-after", "1s", "--reap-interval", "200ms")
    bridge.send_udp("\n".join(worker_lines("w1") + worker_lines("w2") + [line("builds_started", 1, "")]))
    samples = bridge.wait_for(lambda s: len(series_of(s, "w1")) == 5 and len(series_of(s, "w2")) == 5)
    assert samples is not None, bridge.metrics()
    # w2 keeps talking, but only one kind of event; w1 goes silent
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        bridge.send_udp(line("worker_tasks", 5, "", worker="w2", platform="linux"))
        time.sleep(0.1)
    samples = bridge.samples()
    assert series_of(samples, "w1") == set()
    assert len(series_of(samples, "w2")) == 5  # all of its series, not just worker_tasks
    assert sample(samples, "concourse_builds_started_total") == 1  # no worker label: never reaped
    assert sample(samples, "statsd_bridge_reaped_series_total") == 5
    assert sample(samples, "statsd_bridge_reaped_sources_total") == 1
    assert sample(samples, "statsd_bridge_reaper_sources") == 1
    # a worker that comes back starts afresh
    bridge.send_udp(line("worker_unknown_volumes", 9, "", worker="w1"))
    samples = bridge.wait_for(lambda s: sample(s, "concourse_workers_unknown_volumes", worker="w1") == 9)
    assert samples is not None
    assert series_of(samples, "w1") == {"concourse_workers_unknown_volumes"}


def test_reaper_flags_override_the_mapping_file(bridge_factory):
    bridge = bridge_factory(
        "--mapping-config", CONCOURSE, "--reap-label", "", "--reap-after", "1s", "--reap-interval", "200ms"
    )
    bridge.send_udp(line("worker_tasks", 5, "", worker="w9", platform="linux"))
    assert bridge.wait_for(lambda s: series_of(s, "w9")) is not None
    time.sleep(2.0)
    assert series_of(bridge.samples(), "w9") == {"concourse_workers_tasks"}
    assert not any("reaper on" in entry for entry in bridge.log)
