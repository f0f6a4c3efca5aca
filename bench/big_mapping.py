"""A large mapping file shaped like a production one, for timing the lint and the load (and for tests).

    python -m bench.big_mapping --rules 3500 OUT [--seed N]

Teams own services; each service has a block of rules over its own prefix: HTTP request counters and
latency histograms, database timers into summaries, queue gauges, cache counters, a regex for batch
jobs, a debug drop rule, and now and then an override for one route. Most metric names are shared
across services (a `service` label tells them apart), as in a file many teams edit; some services
put their own name in their metrics'. A few teams' catch-alls and regexes over every team come last.
The file keeps a few mistakes big files have: an override after the rule that takes its names, one
metric name with another label set.
"""

from __future__ import annotations

import argparse
import random
import re

import yaml

TEAMS = [
    "checkout", "search", "payments", "identity", "catalog", "shipping", "ads", "media", "chat", "billing",
    "growth", "infra", "data", "mobile", "ledger", "risk", "support", "notify", "maps", "pricing",
]  # fmt: skip
SERVICE_WORDS = ["api", "web", "worker", "gateway", "indexer", "sync", "auth", "store", "feed", "router", "cron"]
ROUTES = ["home", "login", "cart", "search", "status", "upload", "profile", "orders"]
BUCKET_SETS = [
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    [0.01, 0.05, 0.1, 0.5, 1, 5],
    [0.1, 0.5, 1, 2, 5, 10, 30],
]
QUANTILES = [{"quantile": 0.5, "error": 0.05}, {"quantile": 0.9, "error": 0.01}, {"quantile": 0.99, "error": 0.001}]


def _service_rules(rng: random.Random, team: str, service: str) -> list[dict]:
    """The rules of one service, under `team.service.`."""
    prefix = f"{team}.{service}"
    own = {"team": team, "service": service}
    rules: list[dict] = []
    if rng.random() < 0.3:  # an override for one route, before the general rule as it should be
        route = rng.choice(ROUTES)
        rules.append(
            {
                "match": f"{prefix}.http.{route}.latency",
                "name": "http_request_duration_seconds",
                "observer_type": "histogram",
                "histogram_options": {"buckets": rng.choice(BUCKET_SETS)},
                "labels": {**own, "route": route},
            }
        )
    rules.append(
        {
            "match": f"{prefix}.http.*.*.requests",
            "name": "http_requests_total",
            "match_metric_type": "counter",
            "help": "HTTP requests by method and status.",
            "labels": {**own, "method": "$1", "status": "$2"},
        }
    )
    latency: dict = {"match": f"{prefix}.http.*.latency", "name": "http_request_duration_seconds"}
    latency["observer_type"] = "histogram"
    if rng.random() < 0.4:
        latency["histogram_options"] = {"buckets": rng.choice(BUCKET_SETS)}
    latency["labels"] = {**own, "route": "$1"}
    rules.append(latency)
    database: dict = {"match": f"{prefix}.db.*.query_time", "name": "db_query_seconds", "observer_type": "summary"}
    if rng.random() < 0.5:
        database["summary_options"] = {"quantiles": QUANTILES[: rng.randint(1, 3)], "max_age": "5m"}
    database["labels"] = {**own, "query": "$1"}
    rules.append(database)
    rules.append(
        {
            "match": f"{prefix}.queue.*.depth",
            "name": "queue_depth",
            "match_metric_type": "gauge",
            "labels": {**own, "queue": "$1"},
        }
    )
    if rng.random() < 0.6:
        rules.append({"match": f"{prefix}.cache.*", "name": "cache_${1}_total", "labels": dict(own)})
    if rng.random() < 0.5:  # an older style: the service in the metric's name
        name = f"{team}_{service.replace('-', '_')}_orders_total"
        rules.append(
            {"match": f"{prefix}.orders.*", "name": name, "help": "Orders by state.", "labels": {"state": "$1"}}
        )
    if rng.random() < 0.4:
        rules.append(
            {
                "match": rf"^{re.escape(prefix)}\.jobs\.(?P<job>[a-z_]+)\.(succeeded|failed)$",
                "match_type": "regex",
                "name": "jobs_total",
                "labels": {**own, "job": "${job}", "outcome": "$2"},
            }
        )
    if rng.random() < 0.3:
        rules.append(
            {
                "match": rf"^{re.escape(prefix)}\.(\w+)\.errors$",
                "match_type": "regex",
                "name": "errors_total",
                "labels": {**own, "component": "$1"},
            }
        )
    if rng.random() < 0.3:
        rules.append({"match": f"{prefix}.debug.*", "action": "drop", "name": "dropped"})
    if rng.random() < 0.03:  # a mistake: an override after the rule that already takes its names
        route = rng.choice(ROUTES)
        rules.append(
            {"match": f"{prefix}.http.{route}.latency", "name": f"{route}_latency_seconds", "labels": dict(own)}
        )
    if rng.random() < 0.02:  # a mistake: the shared name with a label set of its own
        rules.append({"match": f"{prefix}.queue.*.lag", "name": "queue_depth", "labels": {"queue": "$1"}})
    return rules


def _team_catch_alls(team: str) -> list[dict]:
    """Rules after a team's services: what no service rule took."""
    return [
        {
            "match": f"{team}.*.http.*.*.requests",
            "name": "http_requests_total",
            "match_metric_type": "counter",
            "help": "HTTP requests by method and status.",
            "labels": {"team": team, "service": "$1", "method": "$2", "status": "$3"},
        },
        {"match": f"{team}.*.*", "name": f"{team}_${{2}}", "labels": {"team": team, "service": "$1"}},
    ]


def _file_wide() -> list[dict]:
    """Regexes over every team, at the end of the file."""
    return [
        {
            "match": r"^(\w+)\.(\w+)\.deploys$",
            "match_type": "regex",
            "name": "deploys_total",
            "match_metric_type": "counter",
            "labels": {"team": "$1", "service": "$2"},
        },
        {
            "match": r"^(\w+)\.([\w-]+)\.build\.(?P<stage>\w+)\.duration$",
            "match_type": "regex",
            "name": "build_stage_seconds",
            "observer_type": "histogram",
            "labels": {"team": "$1", "service": "$2", "stage": "${stage}"},
        },
    ]


def generate(rules: int = 3500, seed: int = 0) -> str:
    """The text of a mapping file of exactly `rules` rules."""
    rng = random.Random(seed)
    # after every service's rules: a few teams' catch-alls, then the regexes over every team
    tail = [rule for team in sorted(rng.sample(TEAMS, 4)) for rule in _team_catch_alls(team)] + _file_wide()
    mappings: list[dict] = []
    number = 0
    while len(mappings) < rules - len(tail):
        team = TEAMS[number % len(TEAMS)]
        for _ in range(rng.randint(3, 8)):
            mappings += _service_rules(rng, team, f"{rng.choice(SERVICE_WORDS)}-{number}")
            number += 1
    mappings = mappings[: max(0, rules - len(tail))] + tail[:rules]
    document = {
        "defaults": {"observer_type": "histogram", "histogram_options": {"buckets": BUCKET_SETS[0]}, "ttl": "10m"},
        "mappings": mappings,
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the file to write")
    parser.add_argument("--rules", type=int, default=3500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(generate(args.rules, args.seed))


if __name__ == "__main__":
    main()
