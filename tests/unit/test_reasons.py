"""The rejection reasons are listed once (bridge/reasons.py): every reason the parser or the ingest counts
is there, and the protocol page names each."""

import ast
import re
from pathlib import Path

from bridge.reasons import REASONS

ROOT = Path(__file__).resolve().parents[2]


def counted_reasons() -> set[str]:
    """The strings the parser and the ingest give as a LineError's reason or count as an error's."""
    reasons: set[str] = set()
    for path in (ROOT / "bridge" / "parsing" / "line.py", *(ROOT / "bridge" / "ingest").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "LineError" and node.args:
                reasons |= {c.value for c in ast.walk(node.args[0]) if isinstance(c, ast.Constant)}
            if isinstance(node, ast.Subscript) and getattr(node.value, "attr", "") in ("sample_errors", "event_errors"):
                reasons |= {c.value for c in ast.walk(node.slice) if isinstance(c, ast.Constant)}
    line = (ROOT / "bridge" / "parsing" / "line.py").read_text()
    reasons |= set(re.findall(r'return "(\w+_unsupported)"', line))
    return {reason for reason in reasons if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", str(reason))}  # not `== "s"`


def test_every_counted_reason_is_listed_and_only_those():
    assert counted_reasons() == set(REASONS)


def test_the_protocol_page_names_every_reason():
    page = (ROOT / "docs" / "protocol.md").read_text()
    assert [reason for reason in REASONS if f"`{reason}`" not in page] == []
