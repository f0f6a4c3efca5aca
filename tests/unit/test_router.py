"""The mapper on its own: which rule a name takes (globs before regexes, each in file order), what it makes
of the templates, the cache, and unmapped names."""

from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.mapping.semantics import escape_name

RULES = r"""
mappings:
- match: api.*.latency
  name: api_latency_seconds
  labels: {route: $1}
- match: api.*.*
  name: api_${2}_total
  labels: {route: $1}
- match: ^(\w+)\.deploys\.(\w+)$
  match_type: regex
  name: deploys_total
  labels: {service: $1, env: $2}
- match: gauges.*
  match_metric_type: gauge
  name: only_gauges
- match: noisy.*
  action: drop
  name: dropped
"""


def test_globs_win_in_file_order_and_fill_their_templates():
    mapper = Mapper(load_mapping(RULES))
    route = mapper.map("api.home.latency", "observer")
    assert route.mapped and route.rule is not None and route.rule.line == 3
    assert (route.targets[0].name, route.targets[0].labels) == ("api_latency_seconds", {"route": "home"})
    other = mapper.map("api.home.hits", "counter").targets[0]
    assert (other.name, other.labels) == ("api_hits_total", {"route": "home"})


def test_regexes_come_after_the_globs_and_expand_their_groups():
    target = Mapper(load_mapping(RULES)).map("web.deploys.prod", "counter").targets[0]
    assert (target.name, target.labels) == ("deploys_total", {"service": "web", "env": "prod"})


def test_match_metric_type_drop_and_unmapped():
    mapper = Mapper(load_mapping(RULES))
    assert mapper.map("gauges.depth", "gauge").targets[0].name == "only_gauges"
    unmapped = mapper.map("gauges.depth", "counter")
    assert not unmapped.mapped and unmapped.targets[0].name == "gauges_depth"
    assert mapper.map("noisy.thing", "counter").drop


def test_routes_are_cached_by_name_and_kind_and_forgotten_when_their_metric_goes():
    mapper = Mapper(load_mapping(RULES))
    first = mapper.map("api.a.latency", "observer")
    assert mapper.map("api.a.latency", "observer") is first
    assert (mapper.cache_gets, mapper.cache_hits, mapper.cache_length) == (2, 1, 1)
    mapper.forget_gone(lambda name: False)
    assert mapper.cache_length == 0


def test_names_are_escaped_as_statsd_exporter_escapes_them():
    assert escape_name("test.web-server.foo") == "test_web_server_foo"
    assert escape_name("a--b") == "a_b"
    assert escape_name("9lives") == "_9lives"
