"""statsd-bridge explain in-process: every line kind, JSON, the rule's file and line, extended outputs."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.main import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "mappings" / "example.yml")


def explain(*args: str, input: str | bytes | None = None) -> dict:
    result = CliRunner().invoke(cli, ["explain", "--format", "json", *args], input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# every line kind the parser knows: (line, dialect, what happens to the series, rejection reason)
LINE_KINDS = [
    ("c:3|c", "none", "add 3 (now 3)", None),
    ("c:1|c|@0.25", "none", "add 4 (now 4)", None),
    ("g:7|g", "none", "set 7", None),
    ("g:-2|g", "none", "change by -2 (now -2)", None),
    ("t:250|ms", "none", "observe 0.25", None),  # unmapped observers are summaries, as in statsd_exporter
    ("h:3|h", "none", "observe 3", None),
    ("d:0.5|d", "none", "observe 0.5", None),
    ("m:1:2|ms", "none", "2 observations, sum 0.003", None),
    ("old:1|c:2|c", "none", "add 3 (now 3)", None),
    ("tagged:1|c|#env:prod", "dogstatsd", "add 1 (now 1)", None),
    ("tagged,env=prod:1|c", "influxdb", "add 1 (now 1)", None),
    ("tagged#env=prod:1|c", "librato", "add 1 (now 1)", None),
    ("tagged[env=prod]:1|c", "signalfx", "add 1 (now 1)", None),
    ("ts:1|c|T1700000000", "none", "add 1 (now 1)", None),
    ("cid:1|c|#env:prod|c:4f9c0e2a", "dogstatsd", "add 1 (now 1)", None),
    ("s:u1|s", "", None, "set_unsupported"),
    ("_e{1,1}:a|b", "", None, "dogstatsd_event_unsupported"),
    ("_sc|svc|0", "", None, "service_check_unsupported"),
    ("no colon", "", None, "malformed_line"),
    ("x:1", "", None, "not_enough_parts_after_colon"),
    ("x:abc|c", "", None, "malformed_value"),
    ("x:1|ms|@2", "", None, "invalid_sample_factor"),
    ("x:1|c|@abc", "none", "add 1 (now 1)", "invalid_sample_factor"),  # counted, and the sample kept
    ("x:1|c|@0", "none", "add 1 (now 1)", None),
    ("x:1|c|@2", "none", "add 0.5 (now 0.5)", None),
    ("x:1|c|Tsoon", "", None, "malformed_timestamp"),
    ("x,a=b:1|c|#c:d", "", None, "mixed_tagging_styles"),
    ("x:1:2|c", "", None, "invalid_extended_aggregate_type"),
    ("x:1|q", "", None, "illegal_event"),
    ("x:-1|c", "", None, "illegal_negative_counter"),
    ("x:inf|c", "", None, "non_finite_counter"),
    ("x:nan|ms", "", None, "non_finite_observation"),
]


@pytest.mark.parametrize("line,dialect,effect,reason", LINE_KINDS, ids=[kind[0] for kind in LINE_KINDS])
def test_every_line_kind_is_explained(line, dialect, effect, reason):
    (result,) = explain(line)["lines"]
    assert result["line"] == line
    if effect is not None:
        assert result["dialect"] == dialect
        assert [series["effect"] for series in result["series"]] == [effect]
    else:
        assert result["series"] == []
    assert [problem["reason"] for problem in result["problems"]] == ([reason] if reason else [])
    if reason:
        assert result["problems"][0]["message"] != reason  # worded for a person


def test_invalid_utf8_on_stdin_is_explained_as_rejected():
    result = explain(input=b"ok:1|c\n\xff\xfe:1|c\n")
    assert [line["problems"] for line in result["lines"]][1][0]["reason"] == "invalid_utf8"
    assert result["lines"][0]["series"][0]["effect"] == "add 1 (now 1)"


def test_json_names_the_rule_with_file_and_line():
    (result,) = explain("--mapping-config", EXAMPLE, "web.deploys.prod:2|c")["lines"]
    (sample,) = result["samples"]
    assert sample["rule"] == {
        "file": EXAMPLE,
        "line": 12,
        "match": r"(\w+)\.deploys\.(\w+)$",
        "match_type": "regex",
        "action": "map",
    }
    assert sample["outcome"] == "mapped"
    labels = {"env": "prod", "service": "web"}
    assert result["series"] == [
        {"name": "deploys_total", "type": "counter", "labels": labels, "effect": "add 2 (now 2)"}
    ]


def test_extended_outputs_skips_and_conflicts_are_explained(tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text(
        "mappings:\n- match: job.done\n  outputs:\n  - name: jobs_total\n    type: counter\n    value: count\n"
        "    required: [team]\n  - name: job_seconds\n    type: histogram\n"
    )
    first, second, third = explain(
        "--mapping-config", str(mapping), "job.done:1.5|g|#team:a", "job.done:2|g", "jobs_total:1|g"
    )["lines"]
    assert {series["name"]: series["effect"] for series in first["series"]} == {
        "jobs_total": "add 1 (now 1)",
        "job_seconds": "observe 1.5 into bucket le=2.5",
    }
    assert [p["reason"] for p in second["problems"]] == ["skipped"]
    assert [s["name"] for s in second["series"]] == ["job_seconds"]
    assert [p["reason"] for p in third["problems"]] == ["conflict"]


def test_explain_with_a_bad_mapping_file_exits_non_zero(tmp_path):
    mapping = tmp_path / "bad.yml"
    mapping.write_text("mappings:\n- match: x\n  name: y\n  scale: big\n")
    result = CliRunner().invoke(cli, ["explain", "--mapping-config", str(mapping), "x:1|c"])
    assert result.exit_code == 1
    assert f"{mapping}:4: scale" in result.output
