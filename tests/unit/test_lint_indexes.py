"""The lint's indexed checks find what the pairwise walks they replace find, finding for finding.

The lint looks rules up in indexes (lint.shadowing and compat.GlobIndex, both on globs.PartIndex;
globs.backtracking_pairs, globs.backtracking_needed) instead of walking every pair of rules, so that a
file of thousands of rules lints in about a second. Here each index is swapped for its pairwise walk and the whole lint
must come out the same, on random small files, generated ones and a big file's head.
"""

from __future__ import annotations

import random
import re
from itertools import combinations

import pytest
import yaml

from bench.big_mapping import generate as big_mapping
from bridge.mapping import globs as glob_model
from bridge.mapping import lint
from bridge.mapping.compat import GlobIndex
from bridge.mapping.globs import backtracking_needed, part_covers
from bridge.mapping.lint import Finding, _covers
from bridge.mapping.loader import load_mapping
from bridge.mapping.schema import Rule
from bridge.mapping.semantics import takes_kind
from tests.mapping_generator import generate


def pairwise_shadowing(rules: list[Rule]):
    for later_index, later in enumerate(rules):
        for earlier in rules[:later_index]:
            if _covers(earlier, later):
                yield earlier, later
                break


def pairwise_backtracking(globs: list[Rule]) -> list[tuple[Rule, Rule, int]]:
    found = []
    for first, second in combinations(globs, 2):
        a, b = first.match.split("."), second.match.split(".")
        for i in range(min(len(a), len(b))):
            if a[i] == b[i]:
                continue
            if ("*" in a[i]) == ("*" in b[i]):
                break
            literal, wild = (a, b) if "*" not in a[i] else (b, a)
            covered = len(literal) == len(wild) and all(
                part_covers(x, y) for x, y in zip(literal[i + 1 :], wild[i + 1 :], strict=True)
            )
            if not covered:
                found.append((first, second, i))
            break
    return found


def first_glob_one_by_one(index: GlobIndex, name: str, kind: str) -> Rule | None:
    return next((rule for rule in index.globs if takes_kind(rule, kind) and rule.pattern.match(name)), None)


def backtracking_needed_as_written(globs: list[str]) -> bool:
    """statsd_exporter's fsm.TestIfNeedBacktracking as written, pair by pair: what the index must agree with."""

    def as_regex(glob: str) -> re.Pattern[str]:
        return re.compile("^" + glob.replace(".", r"\.").replace("*", "([^.]*)") + "$")

    by_length: dict[int, list[str]] = {}
    for glob in globs:
        by_length.setdefault(len(glob.split(".")), []).append(glob)
    for group in by_length.values():
        if len(group) < 2:
            continue
        patterns = [as_regex(glob) for glob in group]
        for i, first in enumerate(group):
            if "*" not in first:
                continue
            needed = False
            for index, char in enumerate(first):
                if char != "*":
                    continue
                head = re.compile("^" + first[:index].replace(".", r"\.").replace("*", r"\*"))
                if any(j != i and head.search(other) for j, other in enumerate(group)):
                    needed = True
            if any(j != i and patterns[i].search(other) for j, other in enumerate(group)):
                needed = False
            if any(j != i and pattern.search(first) for j, pattern in enumerate(patterns)):
                needed = False
            if needed:
                return True
    return False


def lint_pairwise(text: str) -> list[Finding]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lint, "shadowing", pairwise_shadowing)
        patch.setattr(lint, "backtracking_pairs", pairwise_backtracking)
        patch.setattr(GlobIndex, "first", first_glob_one_by_one)
        patch.setattr(glob_model, "backtracking_needed", backtracking_needed_as_written)
        return lint.lint(load_mapping(text, "m.yml"))


def random_file(seed: int) -> str:
    """Rules that meet a lot: few parts from few words, `*` whole and partial, catch-all and twin regexes,
    metric types, and now and then glob_disable_ordering."""
    rng = random.Random(seed)
    rules = []
    for _ in range(rng.randint(2, 30)):
        if rng.random() < 0.8:
            parts = [rng.choice(["a", "b", "c", "*", "*", "a*", "*b"]) for _ in range(rng.randint(1, 4))]
            rule = {"match": ".".join(parts), "name": rng.choice(["m", "n", "m_$1"]) if "*" in parts else "m"}
        else:
            match = rng.choice([".*", "(.*)", "^.+$", r"a\.(\w+)", r"a\.(\w+)", r"^b\..*"])
            rule = {"match": match, "match_type": "regex", "name": "r"}
        if rng.random() < 0.3:
            rule["match_metric_type"] = rng.choice(["counter", "gauge", "observer"])
        rules.append(rule)
    document: dict = {"mappings": rules}
    if rng.random() < 0.3:
        document["defaults"] = {"glob_disable_ordering": True}
    return yaml.safe_dump(document, sort_keys=False)


@pytest.mark.parametrize("seed", range(150))
def test_random_rules_lint_as_pairwise(seed):
    text = random_file(seed)
    assert lint.lint(load_mapping(text, "m.yml")) == lint_pairwise(text)


@pytest.mark.parametrize("seed", range(40))
def test_generated_files_lint_as_pairwise(seed):
    text = generate(seed).text
    assert lint.lint(load_mapping(text, "m.yml")) == lint_pairwise(text)


@pytest.mark.parametrize("seed", range(3))
def test_a_big_files_head_lints_as_pairwise(seed):
    text = big_mapping(150, seed)
    ordered = lint.lint(load_mapping(text, "m.yml"))
    assert ordered == lint_pairwise(text)
    assert {finding.check for finding in ordered} >= {"backtracking", "shadowed"}
    unordered = text.replace("defaults:\n", "defaults:\n  glob_disable_ordering: true\n", 1)
    assert lint.lint(load_mapping(unordered, "m.yml")) == lint_pairwise(unordered)


@pytest.mark.parametrize("seed", range(300))
def test_backtracking_needed_as_written(seed):
    rng = random.Random(seed)
    globs = [
        ".".join(rng.choice(["a", "b", "ab", "*", "a*", "*b"]) for _ in range(rng.randint(1, 3)))
        for _ in range(rng.randint(1, 8))
    ]
    assert backtracking_needed(globs) == backtracking_needed_as_written(globs), globs
