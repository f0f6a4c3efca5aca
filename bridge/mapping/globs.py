"""statsd_exporter's globs: what one matches, which parts cover which, its matcher's tree (pkg/mapper/fsm)
with its order and its backtracking, and the pairs of globs that make that matcher backtrack.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field

from bridge.mapping.schema import MappingConfig, Rule
from bridge.mapping.semantics import KINDS, takes_kind


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """A glob's `*` matches within one dot-separated part (any text without a dot), the rest literally, and
    the whole name. Applied to another glob's text, it says whether every name that glob matches is matched
    by this one (a `*` there read as a character), which is how statsd_exporter compares globs."""
    return re.compile("([^.]*)".join(re.escape(piece) for piece in glob.split("*")) + r"\Z")


def part_covers(earlier: str, later: str) -> bool:
    """Whether one part of a glob takes every text another glob's part at that place takes."""
    if earlier == "*" or earlier == later:
        return True
    if "*" in later or "*" not in earlier:
        return False
    return glob_to_regex(earlier).match(later) is not None


def literal_first(rule: Rule) -> tuple[int, ...]:
    """The order of globs under glob_disable_ordering: at each part, a literal before a `*`, as the tree's walk."""
    return tuple(1 if "*" in part else 0 for part in rule.match.split("."))


class PartIndex:
    """Globs by their parts, as bit sets (bit i: the glob added at position i), giving for a name or another
    glob the few globs that might match or cover it; the caller tests those. A glob's `*` never takes a dot,
    so a glob takes only names of as many parts, and only those whose part is its own wherever its part has
    no `*`: with thousands of globs, a name meets a handful instead of all of them."""

    def __init__(self) -> None:
        # by number of parts, for each place: part -> globs with that part there; globs whose part there is
        # `*`; globs with a `*` anywhere in their part there
        self._parts: dict[int, list[dict[str, int]]] = {}
        self._star: dict[int, list[int]] = {}
        self._wild: dict[int, list[int]] = {}

    def add(self, position: int, glob: str) -> None:
        bit, parts = 1 << position, glob.split(".")
        exact = self._parts.setdefault(len(parts), [{} for _ in parts])
        star = self._star.setdefault(len(parts), [0] * len(parts))
        wild = self._wild.setdefault(len(parts), [0] * len(parts))
        for place, part in enumerate(parts):
            exact[place][part] = exact[place].get(part, 0) | bit
            if part == "*":
                star[place] |= bit
            if "*" in part:
                wild[place] |= bit

    def matching(self, name: str) -> int:
        """Globs that might match a name: at each place, its part there or a `*` in theirs."""
        return self._candidates(name.split("."), covering=False)

    def covering(self, glob: str) -> int:
        """Globs that might take every name `glob` matches: at each place, its part there, or a `*` in theirs
        where its part is literal, a whole `*` where its part has one."""
        return self._candidates(glob.split("."), covering=True)

    def _candidates(self, parts: list[str], covering: bool) -> int:
        exact = self._parts.get(len(parts))
        if exact is None:
            return 0
        found = -1  # every glob, until a place rules some out
        for place, part in enumerate(parts):
            wild = self._star if covering and "*" in part else self._wild
            found &= exact[place].get(part, 0) | wild[len(parts)][place]
            if not found:
                break
        return found


@dataclass(eq=False)
class State:
    transitions: dict[str, State] = field(default_factory=dict)
    result: Rule | None = None  # set only by the glob that created this state and ends here
    priority: int = 0  # the place in the order of the last glob that ends here
    shortest: int = 0  # fewest and most components left over the globs that pass through
    longest: int = 0


class ReferenceGlobs:
    """statsd_exporter's state machine of the glob rules, built as its AddState builds it: one tree per
    metric type, one state per path. A state is created once, by the first glob to pass through it;
    only a glob that ends on the state it creates becomes its result, and every glob that ends there
    gives it its own place in the order. So a glob whose path an earlier, longer glob already made
    never matches, and a duplicated glob moves the first one to the duplicate's place."""

    def __init__(self, config: MappingConfig) -> None:
        self.globs = [rule for rule in config.rules if rule.match_type == "glob"]
        self.ordering_disabled = config.glob_disable_ordering
        self.roots = {kind: State() for kind in KINDS}
        for priority, rule in enumerate(self.globs):
            self._add(rule, priority)
        self.backtracking = not self.ordering_disabled or backtracking_needed([rule.match for rule in self.globs])

    def _add(self, rule: Rule, priority: int) -> None:
        fields = rule.match.split(".")
        for kind in (kind for kind in KINDS if takes_kind(rule, kind)):
            state = self.roots[kind]
            for depth, part in enumerate(fields):
                left = len(fields) - depth - 1
                child = state.transitions.get(part)
                if child is None:
                    child = state.transitions[part] = State(shortest=left, longest=left)
                    if left == 0:
                        child.result = rule
                else:
                    child.shortest, child.longest = min(child.shortest, left), max(child.longest, left)
                state = child
            state.priority = priority

    def state(self, rule: Rule, kind: str) -> State | None:
        """The state `rule` ends on in the tree of `kind`; None where the rule does not take that kind."""
        if not takes_kind(rule, kind):
            return None
        state = self.roots[kind]
        for part in rule.match.split("."):
            state = state.transitions[part]
        return state

    def match(self, name: str, kind: str) -> Rule | None:
        """The glob statsd_exporter maps a name with, as its GetMapping walks the tree: literal parts
        before `*`; with ordering, every path (it backtracks), the state first in the order winning;
        without, the first path found, trying the `*` of a part only where it backtracks."""
        fields = name.split(".")
        found: list[State] = []
        self._walk(self.roots[kind], fields, 0, found)
        if not found:
            return None
        if self.ordering_disabled:
            return found[0].result
        return min(found, key=lambda state: state.priority).result

    def _walk(self, state: State, fields: list[str], depth: int, found: list[State]) -> bool:
        """Depth first, literal before `*`; True once a result is found and the walk may stop."""
        left = len(fields) - depth - 1
        options = []
        literal = state.transitions.get(fields[depth])
        if literal is not None and literal.shortest <= left <= literal.longest:
            options.append(literal)
        star = state.transitions.get("*")
        if star is not None and star.shortest <= left <= star.longest and (not options or self.backtracking):
            options.append(star)
        for child in options:
            if left == 0:
                if child.result is not None:
                    found.append(child)
                    if self.ordering_disabled:
                        return True
            elif self._walk(child, fields, depth + 1, found) and self.ordering_disabled:
                return True
        return False


def backtracking_needed(globs: list[str]) -> bool:
    """statsd_exporter's own test of whether globs need backtracking when ordering is disabled
    (fsm.TestIfNeedBacktracking), followed as written: among globs of one length, one with a `*`
    whose text before that `*` begins another glob needs it, unless one of the two covers the other."""
    by_length: dict[int, list[str]] = {}
    for glob in globs:
        by_length.setdefault(len(glob.split(".")), []).append(glob)
    return any(_group_needs_backtracking(group) for group in by_length.values() if len(group) > 1)


def _group_needs_backtracking(group: list[str]) -> bool:
    """The test for globs of one length. statsd_exporter searches every other glob with a regex for each
    glob; here its first test, which rules out most globs, is a prefix search in the sorted globs (the
    loader admits only letters, digits, `_`, `:`, `-`, `*` and dots in a glob, so that regex is a plain
    prefix), and the globs' own regexes are compiled only for the few that pass it."""
    ordered = sorted(group)
    patterns: dict[int, re.Pattern[str]] = {}

    def pattern(index: int) -> re.Pattern[str]:
        if index not in patterns:
            patterns[index] = glob_to_regex(group[index])
        return patterns[index]

    for i, first in enumerate(group):
        star = first.find("*")
        # the text before the first `*` begins another glob (the text before a later `*` begins fewer)
        if star < 0 or not _begins_two(ordered, first[:star]):
            continue
        if any(j != i and pattern(i).match(other) for j, other in enumerate(group)):
            continue
        if any(j != i and pattern(j).match(first) for j in range(len(group))):
            continue
        return True
    return False


def _begins_two(ordered: list[str], head: str) -> bool:
    """Whether two or more of the sorted texts begin with `head` (the glob it is taken from is one)."""
    start = bisect.bisect_left(ordered, head)
    return start + 1 < len(ordered) and ordered[start + 1].startswith(head)


def backtracking_pairs(globs: list[Rule]) -> list[tuple[Rule, Rule, int]]:
    """(first, second, component) for each pair of globs, first before second in `globs`, that need
    backtracking at that component (from 0), in the order of the pairs (by first, then second).

    Only two globs that part at a component, one with a `*` there and the other without, can need it:
    the globs are grouped by their parts, component by component, and only the pairs of a wild and a
    literal group of one parent are checked. A pairwise walk checks every pair of thousands of globs.
    The findings themselves can be quadratic (n wild globs each against n literal ones) and so, then,
    is this; on a real file the pairs it checks are about the pairs it reports.
    """
    found: list[tuple[int, int, int]] = []
    split = [rule.match.split(".") for rule in globs]
    stack = [(list(range(len(globs))), 0)]  # (globs sharing their first `depth` parts, depth)
    while stack:
        members, depth = stack.pop()
        groups: dict[str, list[int]] = {}
        for index in members:
            if len(split[index]) > depth:  # a glob that ends here parts from none of the others
                groups.setdefault(split[index][depth], []).append(index)
        wild = [index for part, group in groups.items() if "*" in part for index in group]
        literal = [index for part, group in groups.items() if "*" not in part for index in group]
        for first, second in (sorted(pair) for pair in itertools.product(wild, literal)):
            component = _backtracking_at(split[first], split[second])
            if component is not None:
                found.append((first, second, component))
        stack += [(group, depth + 1) for group in groups.values() if len(group) > 1]
    return [(globs[first], globs[second], component) for first, second, component in sorted(found)]


def _backtracking_at(a: list[str], b: list[str]) -> int | None:
    """The component at which two globs' parts need backtracking, or None."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        if ("*" in a[i]) == ("*" in b[i]):
            return None  # two literals (or two wildcards) part here for good
        literal, wild = (a, b) if "*" not in a[i] else (b, a)
        # a name that takes the literal branch falls back unless the literal rule matches it too
        rest_covered = len(literal) == len(wild) and all(
            part_covers(x, y) for x, y in zip(literal[i + 1 :], wild[i + 1 :], strict=True)
        )
        return None if rest_covered else i
    return None
