"""The documents say what the code is: every module has its line in docs/architecture.md, and only
modules that exist do; every file and link they name is in the repository; the programs the tests run and the
packaging's claims are written down once and hold."""

import re
from pathlib import Path

from tests.conftest import programs

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_architecture_page_names_every_module_and_only_those():
    page = (ROOT / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"^(bridge/\S+\.py)\s", page, re.M))
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "bridge").rglob("*.py")}
    modules -= {path for path in modules if path.endswith(("__init__.py", "__main__.py", "metrics_pb2.py"))}
    assert listed == modules


def test_every_file_the_documents_name_exists():
    named = set()
    for doc in DOCUMENTS:
        named.update(
            re.findall(
                r"`((?:tests|bridge|bench|deploy|mappings)/[\w./-]+\.(?:py|yml|yaml|c|service|conf|txt))`",
                doc.read_text(),
            )
        )
    assert named and all((ROOT / path).exists() for path in named), sorted(p for p in named if not (ROOT / p).exists())


def anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    headings = re.findall(r"^#+ (.*)$", re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_link_of_the_documents_leads_to_a_file_and_heading_of_the_repository():
    broken = []
    for doc in DOCUMENTS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.is_relative_to(ROOT) or not linked.exists():
                broken.append(f"{doc.name}: {target}")
            elif anchor and anchor not in anchors(linked):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_programs_the_tests_require_are_the_listed_ones():
    """tests/external/programs.txt is the one list (make test-tools and .ci/run read it): every program a test
    asks for by name is on it, and every program on it is asked for."""
    required = set()
    for test in (ROOT / "tests").rglob("*.py"):
        required.update(re.findall(r"\brequire\(\s*\"([\w.-]+)\"", test.read_text()))
    # npm installs hot-shots (make test); statsd_exporter is found through STATSD_EXPORTER first (tests/differential.py)
    assert required | {"npm", "statsd_exporter"} == set(programs())
    for tool, packages in programs().items():
        assert packages or tool == "statsd_exporter", tool  # .ci/run installs each of the others with apt-get


def test_the_python_classifiers_are_the_versions_the_makefile_tests():
    pyproject, makefile = (ROOT / "pyproject.toml").read_text(), (ROOT / "Makefile").read_text()
    classified = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject)
    (tested,) = re.findall(r"^PYTHON_VERSIONS := (.*)$", makefile, re.M)
    # the default venv's Python (the Dockerfile's and Debian 12's 3.11) and the others make test-pythons runs
    assert sorted(classified, key=lambda v: int(v[2:])) == sorted({"3.11", *tested.split()}, key=lambda v: int(v[2:]))
    assert f'requires-python = ">={classified[0]}"' in pyproject


def section(doc: Path, heading: str) -> str:
    return doc.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_the_cpu_ratios_are_the_measured_ones_and_the_readme_quotes_them():
    """Each run's CPU ratio in docs/performance.md is its two CPU figures divided, each median is the middle run,
    and the README's range is the medians' (Debian's build) and the highest ratio of the pyenv run."""
    against = section(ROOT / "docs" / "performance.md", "Against statsd_exporter")
    medians = []
    for row in re.findall(r"^\| (?:batched|single|mixed|production) \|.*$", against, re.M):
        cpu, ratio = [cell.strip() for cell in row.strip("|").split("|")][-2:]
        runs = [float(bridge) / float(exporter) for bridge, exporter in re.findall(r"([\d.]+)/([\d.]+)", cpu)]
        median, *quoted = (float(number) for number in re.findall(r"[\d.]+", ratio))
        assert len(quoted) == 3 and all(abs(run - shown) <= 0.006 for run, shown in zip(runs, quoted, strict=True)), row
        assert median == sorted(quoted)[1], row
        medians.append(median)
    unoptimised = []
    for bridge, exporter, ratio in re.findall(
        r"(\d\.\d\d) against (\d\.\d\d)[^(]*\((\d\.\d\d)x", against.split("**On pyenv's build**")[1]
    ):
        assert abs(float(bridge) / float(exporter) - float(ratio)) <= 0.006, (bridge, exporter, ratio)
        unoptimised.append(float(ratio))
    assert len(unoptimised) == 2, unoptimised  # the mixed and production loads
    readme = (ROOT / "README.md").read_text().replace("\n", " ")
    expected = f"for {min(medians) * 100:.0f} % to {max(medians) * 100:.0f} % of its CPU per line"
    assert expected in readme
    assert f"up to {max(unoptimised) * 100:.0f} % on an unoptimised CPython build" in readme
