"""What the bridge does with a name the system's resolver can't find: asking is a DNS query, so the network
(or at least the resolver) is another program this test depends on."""

import subprocess
import sys


def test_an_unresolvable_relay_host_stops_start_up_with_one_line():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "--statsd-listen-udp",
            "127.0.0.1:0",
            "--statsd-listen-tcp",
            "",
            "--web-listen-address",
            "127.0.0.1:0",
            "--statsd-relay-address",
            "no-such-host.invalid:8125",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot relay" in result.stderr, result.stderr
