"""The documents say what the code is: every module has its line in docs/architecture.md, and only
modules that exist do."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_architecture_page_names_every_module_and_only_those():
    page = (ROOT / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"^(bridge/\S+\.py)\s", page, re.M))
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "bridge").rglob("*.py")}
    modules -= {path for path in modules if path.endswith(("__init__.py", "__main__.py", "metrics_pb2.py"))}
    assert listed == modules


def test_every_file_the_documents_name_exists():
    named = set()
    for doc in [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]:
        named.update(
            re.findall(
                r"`((?:tests|bridge|bench|deploy|mappings)/[\w./-]+\.(?:py|yml|yaml|c|service|conf))`", doc.read_text()
            )
        )
    assert named and all((ROOT / path).exists() for path in named), sorted(p for p in named if not (ROOT / p).exists())
