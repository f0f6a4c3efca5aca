"""Config on its own: each bad value names its flag; the reaper's settings come from the flags, then the
mapping file, then the defaults."""

import pytest

from bridge.config import DEFAULT_REAP_AFTER, Config, ConfigError, reaper_settings
from bridge.mapping.loader import load_mapping


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("statsd_listen_udp", "nonsense", "--statsd-listen-udp"),
        ("web_telemetry_path", "metrics", "--web-telemetry-path"),
        ("web_telemetry_path", "/-/healthy", "--web-telemetry-path"),
        ("statsd_read_buffer", -1, "--statsd-read-buffer"),
        ("statsd_unixsocket_mode", "999", "--statsd-unixsocket-mode"),
        ("reap_after", "soon", "--reap-after"),
        ("reap_label", "9x", "--reap-label"),
        ("max_series", -1, "--max-series"),
        ("statsd_relay_address", ("host:0",), "--statsd-relay-address"),
        ("statsd_cache_type", "fifo", "--statsd.cache-type"),
        ("watch_mapping_config", True, "--watch-mapping-config"),  # and no mapping file
    ],
)
def test_a_bad_value_names_its_flag(field, value, flag):
    with pytest.raises(ConfigError) as raised:
        Config(**{field: value}).validate()
    assert raised.value.flag == flag


def test_the_defaults_are_valid():
    Config().validate()


def test_every_statsd_listener_off_is_an_error():
    with pytest.raises(ConfigError):
        Config(statsd_listen_udp="", statsd_listen_tcp="").validate()


def test_reaper_settings_flags_then_file_then_defaults():
    mapping = load_mapping("reaper:\n  label: worker\n  after: 2m\nmappings: []\n")
    from_file = reaper_settings(Config(), mapping)
    assert (from_file.label, from_file.after) == ("worker", 120.0)
    from_flags = reaper_settings(Config(reap_label="host", reap_after="30s"), mapping)
    assert (from_flags.label, from_flags.after) == ("host", 30.0)
    defaults = reaper_settings(Config(), load_mapping("mappings: []\n"))
    assert (defaults.label, defaults.after) == ("", DEFAULT_REAP_AFTER)
