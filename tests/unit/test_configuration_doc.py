"""docs/configuration.md holds to the command line as config.py defines it: one row a flag in the order of
--help, with its spellings, metavar and default; and the counts and lists its prose gives."""

import re
from pathlib import Path

import click
import pytest

from bridge.config import FLAGS, INERT_FLAGS
from bridge.main import cli
from bridge.workers.cpus import AUTO_MAX_WORKERS

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text()
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
OPTIONS = [
    param for param in cli.get_params(click.Context(cli, **cli.context_settings)) if isinstance(param, click.Option)
]


def flags_table() -> list[list[str]]:
    section = DOC.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def plain(cell: str) -> str:
    return cell.replace("`", "").replace("\\|", "|")


def spelled(option: click.Option) -> str:
    """An option as its row spells it: each spelling (`--[no-]x` for a switch with an off form), then the
    metavar or the choices."""
    if option.secondary_opts:
        names = [f"`--[no-]{opt[2:]}`" for opt in option.opts]
    else:
        names = [f"`{opt}`" for opt in option.opts]
    choices = option.type.choices if isinstance(option.type, click.Choice) else ()
    metavar = option.metavar or "|".join(map(str, choices))
    return ", ".join(names) + (f" {metavar}" if metavar else "")


def default_in_help(option: click.Option) -> str:
    found = re.search(r"\[default: (.*)\]$", option.help or "")
    return found.group(1) if found else ""


def test_the_table_has_one_row_per_option_in_the_order_of_help():
    assert [row[0].replace("\\|", "|") for row in flags_table()] == [spelled(option) for option in OPTIONS]


def test_each_row_gives_the_default_that_help_gives():
    assert [plain(row[1]) for row in flags_table()] == [default_in_help(option) for option in OPTIONS]


def test_help_gives_every_setting_its_default_and_each_spelling_once():
    for option in OPTIONS:
        assert default_in_help(option) or not option.expose_value, option.name  # all but --version and --help
    for name, spec in FLAGS.items():
        assert default_in_help(next(option for option in OPTIONS if option.name == name)) == spec.shown
    spellings = [spelling for option in OPTIONS for spelling in option.opts + option.secondary_opts]
    assert len(spellings) == len(set(spellings))


def sentence(pattern: str) -> re.Match:
    found = re.search(pattern, DOC.replace("\n", " "))
    assert found, pattern
    return found


def test_the_count_and_list_of_inert_flags():
    claim = sentence(r"The (\w+) inert flags, ((?:`[^`]+`(?:, and |, | and )?)+), are")
    assert claim.group(1) == NUMBERS[len(INERT_FLAGS)]
    assert re.findall(r"`([^`]+)`", claim.group(2)) == [spec.dotted for spec in INERT_FLAGS.values()]


def test_the_count_and_list_of_flags_with_one_spelling():
    claim = sentence(r"(\w+) flags have one spelling only: ((?:`[^`]+`(?:, and |, | and )?)+)")
    single = [option.opts[0] for option in OPTIONS if len(option.opts) == 1 and option.expose_value]
    assert claim.group(1).lower() == NUMBERS[len(single)]
    assert re.findall(r"`([^`]+)`", claim.group(2)) == single


def documents() -> dict[str, str]:
    """README.md and every page of docs/, by path, each as one line."""
    return {
        str(path.relative_to(ROOT)): path.read_text().replace("\n", " ")
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    }


def option_of(spelling: str) -> click.Option:
    return next(option for option in OPTIONS if spelling in option.opts)


def default_of(spelling: str) -> str:
    """The default --help gives, or, where it depends on the mapping file, what it is without one."""
    return default_in_help(option_of(spelling)).rsplit(", else ", 1)[-1]


QUOTED_DEFAULTS = [
    (path, spelling, default)
    for path, text in documents().items()
    for spelling, default in re.findall(r"`(--[\w.-]+)`(?: \w+)? \(default ([\d,]*\d\w*|`[^`]*`)", text)
]


@pytest.mark.parametrize(("path", "spelling", "default"), QUOTED_DEFAULTS)
def test_a_default_quoted_in_the_prose_is_the_flags(path, spelling, default):
    assert plain(default).replace(",", "") == default_of(spelling)


def test_the_prose_quotes_defaults():
    """The pattern above still finds them: a rewording would otherwise leave the test above with nothing."""
    assert {spelling for _, spelling, _ in QUOTED_DEFAULTS} >= {"--max-series", "--reap-after"}


def test_the_readmes_first_flags_give_the_defaults_of_help():
    section = (ROOT / "README.md").read_text().split("## The flags you will use first", 1)[1].split("\n## ", 1)[0]
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in section.splitlines() if line.startswith("| `")]
    checked = 0
    for spellings, defaults, _ in rows:
        flags = re.findall(r"`(--[\w.-]+)`", spellings)
        shown = [plain(each.strip()) for each in defaults.split(", ")] if defaults.strip() else []
        if not shown:  # a command (--check-config), not a setting
            assert not option_of(flags[0]).expose_value or option_of(flags[0]).is_flag, flags
            continue
        if len(shown) == 1:  # one default for every flag of the row
            shown *= len(flags)
        for spelling, default in zip(flags, shown, strict=True):
            assert default == default_of(spelling), spelling
            checked += 1
    assert checked >= 10


def test_the_limit_of_auto_workers_is_the_codes():
    said = [
        int(found)
        for text in documents().values()
        for found in re.findall(r"(?:cgroup|CPU quota).{0,120}?at most (\d+)", text)
    ]
    assert said and set(said) == {AUTO_MAX_WORKERS}
