"""statsd-bridge explain as a program: the examples in docs/operations.md, stdin, a terminal, a running bridge."""

import json
import os
import pty
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.main import cli
from tests.conftest import parse_samples

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "mappings" / "example.yml")


def documented_examples() -> list[tuple[str, str]]:
    section = (ROOT / "docs" / "operations.md").read_text().split("## Explain a line", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n\$ (.*?)\n(.*?)```", section, re.S)
    assert len(blocks) >= 5
    return blocks


@pytest.mark.parametrize("command,expected", documented_examples(), ids=lambda value: value[:60])
def test_the_documented_examples_print_what_the_docs_show(command, expected):
    args = shlex.split(command)
    assert args[:2] == ["statsd-bridge", "explain"]
    result = subprocess.run(
        [sys.executable, "-m", "bridge", *args[1:]], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def explain(*args: str, input: str | bytes | None = None) -> dict:
    result = CliRunner().invoke(cli, ["explain", "--format", "json", *args], input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_explain_agrees_with_a_running_bridge(bridge_factory):
    lines = [
        "api.home.latency:320|ms",
        "web.deploys.prod:1|c",
        "queue.depth:+5|g|#queue:mail",
        "debug.hits:1|c",
        "jobs,region=eu:3|c",
        "web.deploys.prod:-1|c",
        "size:1:2:300|h",
        "queue.depth:-1|g|#queue:mail",
    ]
    explained = explain("--mapping-config", EXAMPLE, *lines)["lines"]
    touched = {(series["name"], frozenset(series["labels"].items())) for line in explained for series in line["series"]}
    bridge = bridge_factory("--mapping-config", EXAMPLE)
    bridge.send_udp("\n".join(lines))
    samples = bridge.wait_for(lambda s: ("size_count", frozenset()) in s)
    assert samples is not None, bridge.metrics()
    own = ("statsd_bridge_", "process_", "python_")
    exposed = {
        (re.sub(r"_(bucket|sum|count)$", "", name), frozenset((k, v) for k, v in labels if k not in ("le", "quantile")))
        for name, labels in samples
        if not name.startswith(own)
    }
    assert exposed == touched
    assert parse_samples(bridge.metrics())[("queue_depth", frozenset({("queue", "mail")}))] == 4


def test_explain_without_lines_on_a_terminal_asks_for_them():
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bridge", "explain"], stdin=terminal, capture_output=True, text=True, timeout=30
        )
    finally:
        os.close(controller)
        os.close(terminal)
    assert result.returncode == 2
    assert "give StatsD lines as arguments or on stdin" in result.stderr


def test_explain_reads_lines_from_a_pipe():
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "explain"],
        input="a:1|c\n\nb:2|g\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "  series:  a counter: add 1 (now 1)" in result.stdout
    assert "  series:  b gauge: set 2" in result.stdout
