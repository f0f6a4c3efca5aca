"""The lint through the command line: --check-config (with and without --lint-strict) and explain --lint."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bridge.main import cli


def check_config(tmp_path: Path, text: str, *flags: str) -> subprocess.CompletedProcess:
    mapping = tmp_path / "m.yml"
    mapping.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--mapping-config", str(mapping), "--check-config", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_check_config_exits_non_zero_on_errors_naming_file_and_line(tmp_path):
    result = check_config(tmp_path, "mappings:\n- match: api.*\n  name: api_$2\n", "--lint-strict")
    assert result.returncode == 1
    # statsd_exporter accepts the file, so without --lint-strict neither does --check-config fail on it
    relaxed = check_config(tmp_path, "mappings:\n- match: api.*\n  name: api_$2\n")
    assert relaxed.returncode == 0, relaxed.stderr
    assert f"{tmp_path / 'm.yml'}:2: warning: name: $2 can never be filled" in relaxed.stderr
    assert f"{tmp_path / 'm.yml'}:2: error: name: $2 can never be filled" in result.stderr
    assert "mapping file has 1 error(s)" in result.stderr


def test_check_config_warns_and_exits_zero(tmp_path):
    result = check_config(tmp_path, "mappings:\n- match: a.*\n  name: a\n- match: a.b\n  name: b\n")
    assert result.returncode == 0, result.stderr
    assert ":4: warning: rule `a.b` never matches: the rule at line 2" in result.stderr
    assert "configuration OK (2 mapping rules, 1 lint warning)" in result.stdout


def test_a_regex_that_does_not_compile(tmp_path):
    result = check_config(tmp_path, "mappings:\n- match: '(unclosed'\n  match_type: regex\n  name: x\n")
    assert result.returncode == 1
    assert f"{tmp_path / 'm.yml'}:2: match: invalid regex" in result.stderr
    mapping = str(tmp_path / "m.yml")
    explained = subprocess.run(
        [sys.executable, "-m", "bridge", "explain", "--lint", "--mapping-config", mapping],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert explained.returncode == 1
    assert f"{mapping}:2: match: invalid regex" in explained.stderr


def test_an_invalid_label_name_is_a_load_error(tmp_path):
    result = check_config(tmp_path, "mappings:\n- match: a.*\n  name: a\n  labels:\n    bad-name: $1\n")
    assert result.returncode == 1
    assert f"{tmp_path / 'm.yml'}:5: bad-name: invalid label name" in result.stderr


def test_explain_lint_reports_and_exits_by_severity(tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text("mappings:\n- match: a.*\n  name: a\n- match: a.b\n  name: b\n")
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "explain", "--lint", "--mapping-config", str(mapping), "a.b:1|c"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert f"{mapping}:4: warning: rule `a.b` never matches" in result.stdout
    assert "  rule:    " + f"{mapping}:2 `a.*` (glob)" in result.stdout  # the shadowing rule takes the line
    mapping.write_text("mappings:\n- match: a.*\n  name: a_$4\n")
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "explain", "--lint", "--mapping-config", str(mapping)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "error: name: $4 can never be filled" in result.stdout


CONCOURSE = Path(__file__).resolve().parents[2] / "mappings" / "concourse.yml"


def test_a_file_of_the_bridges_own_says_once_that_statsd_exporter_refuses_it(tmp_path):
    result = check_config(tmp_path, CONCOURSE.read_text())
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    refusal = [line for line in result.stderr.splitlines() if "statsd_exporter refuses this file" in line]
    assert refusal == [
        f"{tmp_path / 'm.yml'}: statsd_exporter refuses this file for the bridge's mapping extensions `outputs` "
        "(and `reaper`, which it ignores); a rollback to statsd_exporter needs another mapping file"
    ]


def test_a_file_of_the_bridges_own_statsd_exporter_would_load_says_so(tmp_path):
    text = "statsd_bridge_extensions: true\nmappings:\n- match: a.*\n  name: a\n  tags: {route: route}\n"
    result = check_config(tmp_path, text, "--lint-strict")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'm.yml'}: statsd_exporter would load this file but ignore the bridge's mapping extensions "
        "`tags`; a rollback to statsd_exporter needs another mapping file"
    ]


def test_a_file_for_statsd_exporter_too_says_nothing_of_a_rollback(tmp_path):
    # without the declaration, each extension is a finding at its line, and there is no summary line
    result = check_config(tmp_path, "mappings:\n- match: a.*\n  name: a\n  tags: {route: route}\n")
    assert result.returncode == 0, result.stderr
    assert ":4: warning: statsd_exporter ignores `tags`" in result.stderr
    assert "rollback to statsd_exporter needs another mapping file" not in result.stderr


def test_set_window_is_named_in_the_rollback_line_and_at_its_line(tmp_path):
    text = "defaults:\n  set_window: 1m\nmappings:\n- match: a.*\n  name: a\n  set_window: 30s\n"
    declared = check_config(tmp_path, "statsd_bridge_extensions: true\n" + text, "--lint-strict")
    assert declared.returncode == 0, declared.stderr
    assert declared.stderr.splitlines() == [
        f"{tmp_path / 'm.yml'}: statsd_exporter would load this file but ignore the bridge's mapping extensions "
        "`set_window`; a rollback to statsd_exporter needs another mapping file"
    ]
    undeclared = check_config(tmp_path, text)
    assert undeclared.returncode == 0, undeclared.stderr
    for line in (2, 6):
        assert f":{line}: warning: statsd_exporter ignores `set_window`" in undeclared.stderr


UTF8_LINES = ("api.checkout.calls:1|c", "other.name:1|c|#k.v:x")
UTF8_MAPPING = 'mappings:\n- match: api.*.calls\n  name: "api.calls"\n  labels:\n    service.name: "$1"\n'


def test_utf8_names_in_a_mapping_file_load_only_with_the_flag_and_the_lint_names_statsd_exporters_form(tmp_path):
    refused = check_config(tmp_path, UTF8_MAPPING)
    assert refused.returncode == 1
    assert "'api.calls' is not a valid metric name" in refused.stderr
    result = check_config(tmp_path, UTF8_MAPPING, "--statsd.utf8-names")
    assert result.returncode == 0, result.stderr
    assert ":3: warning: `api.calls` is served as written; a Prometheus 2 scraper reads `api_calls` [utf8_name]" in (
        result.stderr
    )
    assert ":5: warning: `service.name` is served as written; a Prometheus 2 scraper reads `service_name`" in (
        result.stderr
    )
    mapping = str(tmp_path / "m.yml")
    explained = CliRunner().invoke(cli, ["explain", "--statsd.utf8-names", "--mapping-config", mapping, *UTF8_LINES])
    assert explained.exit_code == 0, explained.output
    assert 'series:  api.calls{service.name="checkout"} counter' in explained.output
    assert 'series:  other.name{k.v="x"} counter' in explained.output
