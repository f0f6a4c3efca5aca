"""docs/configuration.md holds to the command line as config.py defines it: one row a flag in the order of
--help, with its spellings, metavar and default; and the counts and lists its prose gives."""

import re
from pathlib import Path

import click
import pytest

from bridge.config import FLAGS, INERT_FLAGS
from bridge.main import cli

DOC = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
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


@pytest.mark.parametrize(
    ("spelling", "default"), re.findall(r"`(--[\w.-]+)` \(default ([\d,]*\d|`[^`]*`)", DOC.replace("\n", " "))
)
def test_a_default_quoted_in_the_prose_is_the_flags(spelling, default):
    option = next(option for option in OPTIONS if spelling in option.opts)
    assert plain(default).replace(",", "") == default_in_help(option)
