"""Mapping files read by libyaml give what PyYAML's own parser gives: values, lines, and errors to the letter.

The loader reads with libyaml where PyYAML has it (several times faster on a big file) and falls back to
PyYAML's parser for every text libyaml refuses or may read otherwise; PyYAML's parser is the reference.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import yaml

from bench.big_mapping import generate as big_mapping
from bridge.mapping import yaml_reading
from bridge.mapping.loader import load_mapping
from bridge.mapping.schema import MappingError
from tests.mapping_generator import generate

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml: one parser only")


def plain(value: object) -> object:
    """A loaded config as plain data, a compiled pattern as its text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if hasattr(value, "groupindex"):
        return ("pattern", value.pattern)
    return value


def outcome(text: str) -> object:
    try:
        return plain(load_mapping(text, "m.yml"))
    except MappingError as error:
        return str(error)


def pyyaml_outcome(text: str) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(yaml_reading, "_FastLoader", None)
        return outcome(text)


def libyaml_alone(text: str) -> object:
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return "refused"


def pyyaml_alone(text: str) -> object:
    try:
        return yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return "refused"


# Texts the two parsers read differently, each through the loader as PyYAML's parser reads it
@pytest.mark.parametrize(
    "text",
    [
        "mappings:\n- match: a.b\n  name:\tx\n",  # a tab as a blank: libyaml reads it, PyYAML refuses
        "mappings:\n- match: a.b\n  name: x\n  labels: {k: v?}\n",  # `?` in a flow plain scalar: the same
        "mappings:\n- match: a.b\n  name: x\n  buckets: [1, 2?]\n",
        "mappings:\n- match: a.b\n  name: x\n  help: !\n",  # the bare tag: "" in libyaml, null in PyYAML
        "mappings:\n- match: a.b\n  name: x\n  labels: {k: [!!str,x]}\n",  # a tag ended by a comma in libyaml
        "mappings:\n- match: a.b\n  name: x\n  labels: {k:}\n",  # libyaml refuses, PyYAML reads k: null
    ],
)
def test_what_libyaml_reads_otherwise_is_read_by_pyyaml(text):
    assert libyaml_alone(text) != pyyaml_alone(text)
    assert outcome(text) == pyyaml_outcome(text)


def test_a_big_file_reads_alike():
    text = big_mapping(300, 1)
    assert outcome(text) == pyyaml_outcome(text)


SNIPPETS = [":", " ", "-", "\t", '"', "'", "[", "]", "{", "}", ",", "&a", "*a", "!!str ", "!", "%", "|", ">", "#"]
SNIPPETS += ["\n", "\r\n", "\r", "\x85", "\u2028", "\ufeff", "\x07", "? ", "<<: ", "---\n", "...\n", "  ", "é", "~"]


@pytest.mark.parametrize("seed", range(10))
def test_broken_and_mended_files_read_alike(seed):
    """Generated files with characters put in, cut out and copied: loaded, or refused with the same message."""
    rng = random.Random(seed)
    for _ in range(30):
        text = generate(rng.randrange(1000)).text
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            roll = rng.random()
            if roll < 0.5:
                text = text[:at] + rng.choice(SNIPPETS) + text[at:]
            elif roll < 0.8:
                text = text[:at] + text[at + rng.randint(1, 5) :]
            else:
                start = rng.randrange(len(text) + 1)
                text = text[:at] + text[start : start + rng.randint(1, 40)] + text[at:]
        assert outcome(text) == pyyaml_outcome(text), repr(text)
