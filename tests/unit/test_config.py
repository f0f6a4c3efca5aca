"""Config on its own: a Config is valid once constructed, each bad value names its flag; the flags parse as
the command line writes them; the reaper's settings come from the flags, then the mapping file, then the
defaults."""

import pytest

from bridge.config import DEFAULT_REAP_AFTER, FLAGS, Config, ConfigError, reaper_settings
from bridge.mapping.loader import load_mapping


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("statsd_listen_udp", "nonsense", "--statsd-listen-udp"),
        ("web_listen_address", "", "--web-listen-address"),
        ("web_telemetry_path", "metrics", "--web-telemetry-path"),
        ("web_telemetry_path", "/-/healthy", "--web-telemetry-path"),
        ("web_read_header_timeout", 0.0, "--web-read-header-timeout"),
        ("statsd_read_buffer", -1, "--statsd-read-buffer"),
        ("statsd_unixsocket_mode", 0o1000, "--statsd-unixsocket-mode"),
        ("statsd_workers", 0, "--statsd-workers"),
        ("log_level", "loud", "--log-level"),
        ("reap_after", 0.0, "--reap-after"),
        ("reap_label", "9x", "--reap-label"),
        ("max_series", -1, "--max-series"),
        ("max_series_per_metric", -1, "--max-series-per-metric"),
        ("statsd_relay_address", ("host:0",), "--statsd-relay-address"),
        ("statsd_relay_address", ("no-port",), "--statsd-relay-address"),
        ("statsd_relay_packet_length", 1, "--statsd-relay-packet-length"),
        ("statsd_cache_size", -1, "--statsd-cache-size"),
        ("statsd_cache_type", "fifo", "--statsd-cache-type"),
        ("statsd_event_queue_size", -1, "--statsd-event-queue-size"),
        # statsd_exporter starts with neither: a batch of negative size, a ticker of no interval
        ("statsd_event_flush_threshold", -3, "--statsd-event-flush-threshold"),
        ("statsd_event_flush_interval", 0.0, "--statsd-event-flush-interval"),
        ("statsd_udp_packet_queue_size", -1, "--statsd-udp-packet-queue-size"),
        ("watch_mapping_config", True, "--watch-mapping-config"),  # and no mapping file
    ],
)
def test_a_bad_value_names_its_flag_by_every_spelling(field, value, flag):
    with pytest.raises(ConfigError) as raised:
        Config(**{field: value})
    assert raised.value.flag == flag
    assert raised.value.spellings == FLAGS[field].spellings


def test_the_defaults_are_parsed_values():
    config = Config()
    assert (config.statsd_unixsocket_mode, config.web_read_header_timeout) == (0o755, 10.0)
    assert (config.statsd_workers, config.statsd_event_flush_interval, config.reap_after) == (1, 0.2, None)


def test_every_statsd_listener_off_is_an_error():
    with pytest.raises(ConfigError) as raised:
        Config(statsd_listen_udp="", statsd_listen_tcp="")
    assert raised.value.flag == "--statsd-listen-udp"
    for listener in ("statsd_listen_udp", "statsd_listen_tcp", "statsd_listen_unixgram"):
        assert FLAGS[listener].dotted in raised.value.reason
    assert Config(statsd_listen_udp="", statsd_listen_tcp="", statsd_listen_unixgram="/run/dsd.sock")


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        ("statsd_unixsocket_mode", "600", 0o600),
        ("web_read_header_timeout", "1m30s", 90.0),
        ("reap_interval", "250ms", 0.25),
        ("statsd_workers", "3", 3),
        ("max_series", "0", 0),
    ],
)
def test_a_flag_parses_its_text(field, text, value):
    assert FLAGS[field].parse(text) == value


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("statsd_unixsocket_mode", "999"),
        ("web_read_header_timeout", "soon"),
        ("statsd_workers", "many"),
        ("statsd_workers", "٣"),  # a digit, but not one the flag takes
        ("max_series", "lots"),
    ],
)
def test_a_flag_refuses_text_it_cannot_parse(field, text):
    with pytest.raises(ValueError, match=repr(text)):
        FLAGS[field].parse(text)


def test_auto_workers_is_a_count():
    assert FLAGS["statsd_workers"].parse("auto") >= 1


def test_reaper_settings_flags_then_file_then_defaults():
    mapping = load_mapping("reaper:\n  label: worker\n  after: 2m\nmappings: []\n")
    from_file = reaper_settings(Config(), mapping)
    assert (from_file.label, from_file.after) == ("worker", 120.0)
    from_flags = reaper_settings(Config(reap_label="host", reap_after=30.0), mapping)
    assert (from_flags.label, from_flags.after) == ("host", 30.0)
    defaults = reaper_settings(Config(), load_mapping("mappings: []\n"))
    assert (defaults.label, defaults.after) == ("", DEFAULT_REAP_AFTER)
