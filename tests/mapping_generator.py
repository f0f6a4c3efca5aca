"""Whole mapping files and the lines to send them, generated from a seed, for the differential suite.

The rules are built to meet each other: globs that overlap, shadow, duplicate and prefix one another,
regexes over the same names, one metric name reached by several rules with other label names and other
buckets, `$n`/`${n}` templates with literal text (and, now and then, characters Go's formatter reads),
match_metric_type, drop rules, observer options and defaults. The lines fill each rule's wildcards with
the words of the file, and near misses change, add or drop a part.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import yaml

WORDS = ["app", "web", "db", "req", "time", "hits", "err", "eu", "q-1", "n9"]
FIRST_WORDS = [word for word in WORDS if word[0].isalpha()]  # statsd_exporter's globs start with a letter
LABEL_NAMES = ["route", "env", "part", "kind_", "ab"]
TAG_KEYS = ["env", "route", "zone"]
KINDS = ["c", "g", "ms", "h", "d"]
BUCKET_BOUNDS = [0.001, 0.01, 0.1, 0.5, 1, 2.5, 10, 100, 1000]
# A construct statsd_exporter refuses and the bridge reads, with the finding's check name
REFUSED = {
    "one_char_label": "statsd_exporter_refuses",
    "day_ttl": "statsd_exporter_refuses",
    "partial_glob": "statsd_exporter_refuses",
    "drop_without_name": "statsd_exporter_refuses",
    "summary_options_on_histogram_default": "statsd_exporter_refuses",
    "outputs": "statsd_exporter_extension",
}


@dataclass
class GeneratedFile:
    seed: int
    text: str
    lines: list[str]
    refused: str = ""  # the REFUSED construct put in, if any


def _glob(rng: random.Random, globs: list[list[str]]) -> list[str]:
    """A new glob, or one made from an earlier: the same, a prefix, longer, wider or narrower."""
    if globs and rng.random() < 0.6:
        base = list(rng.choice(globs))
        how = rng.choice(["duplicate", "prefix", "longer", "wider", "narrower", "narrower"])
        if how == "prefix" and len(base) > 2:
            return base[:-1]
        if how == "longer" and len(base) < 5:
            return [*base, rng.choice(["*", *WORDS])]
        if how == "wider":
            literal = [i for i, part in enumerate(base) if part != "*" and i > 0]
            if literal:
                base[rng.choice(literal)] = "*"
            return base
        if how == "narrower":
            stars = [i for i, part in enumerate(base) if part == "*"]
            if stars:
                index = rng.choice(stars)
                base[index] = rng.choice(FIRST_WORDS if index == 0 else WORDS)
            return base
        return base
    length = rng.randint(2, 4)
    parts = [rng.choice(FIRST_WORDS) if rng.random() < 0.8 else "*"]
    parts += [rng.choice(WORDS) if rng.random() < 0.55 else "*" for _ in range(length - 1)]
    return parts


def _regex(rng: random.Random, globs: list[list[str]]) -> tuple[str, list[str], list[str]]:
    """A regex over the names the globs take, with the parts of those names and its named groups."""
    shape = list(rng.choice(globs)) if globs and rng.random() < 0.7 else [rng.choice(WORDS), "*"]
    names = []
    pieces = []
    for part in shape:
        if part == "*":
            if rng.random() < 0.3:
                name = rng.choice(["svc", "what"])
                if name in names:
                    name += str(len(names))
                names.append(name)
                pieces.append(f"(?P<{name}>[^.]+)")
            else:
                pieces.append(rng.choice([r"([^.]+)", r"(\w+)", r"([a-z]+)"]))
        else:
            pieces.append(re.escape(part))
    body = r"\.".join(pieces)
    anchor = rng.choice(["^{}$", "^{}", "{}$", "{}"])
    return anchor.format(body), shape, names


def _template(rng: random.Random, captures: int, named: list[str], regex: bool) -> str:
    """A label value: literal text, captures, and now and then what Go's formatter or Expand reads."""
    references = [f"${i}" for i in range(1, captures + 1)] + [f"${{{i}}}" for i in range(1, captures + 1)]
    if regex:
        references += [f"${{{name}}}" for name in named] + ["$0"]
    roll = rng.random()
    if not references or roll < 0.15:
        return rng.choice(["web", "fixed", "v_1"])
    reference = rng.choice(references)
    if roll < 0.25 and not regex:
        return rng.choice([f"{reference}%", f"50%_{reference}", f"{reference} $12", f"%%{reference}"])
    if roll < 0.35:
        return f"{reference}_total"  # `$1_total` is the variable `1_total` (empty) in both
    return rng.choice(["{}", "x_{}", "{}_y", "{}{}"]).format(reference, reference)


def _name(rng: random.Random, captures: int, shared: list[str]) -> str:
    """gen_-prefixed, so no unmapped line's escaped name can be one; some fixed, some shared by rules."""
    if shared and rng.random() < 0.35:
        return rng.choice(shared)
    if captures and rng.random() < 0.5:
        index = rng.randint(1, captures)
        return rng.choice([f"gen_${index}", f"gen_${{{index}}}_n", f"gen_x${index}"])
    # now and then a name that is another's sample name (gen_lat_count beside a summary gen_lat)
    name = f"gen_{rng.choice(['hits', 'lat', 'size', 'up', 'jobs', 'lat_count', 'lat_sum', 'size_bucket'])}"
    shared.append(name)
    return name


def _observer_options(rng: random.Random, rule: dict, default_type: str) -> None:
    roll = rng.random()
    if roll < 0.25:
        rule["observer_type"] = "histogram"
        if rng.random() < 0.6:
            rule["histogram_options"] = {"buckets": sorted(rng.sample(BUCKET_BOUNDS, rng.randint(1, 4)))}
    elif roll < 0.4:
        rule["observer_type"] = "summary"
        if rng.random() < 0.5:
            quantiles = [{"quantile": 0.5, "error": 0.05}, {"quantile": 0.9, "error": 0.01}]
            rule["summary_options"] = {"quantiles": quantiles}
    elif roll < 0.5 and default_type != "summary":
        # histogram options without an observer type: statsd_exporter uses them where the default is histogram
        rule["histogram_options"] = {"buckets": sorted(rng.sample(BUCKET_BOUNDS, rng.randint(1, 3)))}


def generate(seed: int, refuse: bool | None = None) -> GeneratedFile:
    rng = random.Random(seed)
    refused = ""
    if refuse is None:
        refuse = rng.random() < 0.15
    if refuse:
        refused = rng.choice(sorted(REFUSED))
    document: dict = {}
    default_type = rng.choice(["", "", "histogram", "summary"])
    defaults: dict = {}
    if default_type:
        defaults["observer_type"] = default_type
    if rng.random() < 0.3:
        defaults["histogram_options"] = {"buckets": sorted(rng.sample(BUCKET_BOUNDS, rng.randint(2, 5)))}
    if rng.random() < 0.2:
        defaults["glob_disable_ordering"] = True
    if refused == "summary_options_on_histogram_default":
        defaults["observer_type"] = default_type = "histogram"
    if defaults:
        document["defaults"] = defaults
    globs: list[list[str]] = []
    shapes: list[list[str]] = []  # the parts of the names each rule takes, `*` for a word
    shared_names: list[str] = []
    rules = []
    for _ in range(rng.randint(4, 12)):
        rule: dict = {}
        regex = bool(globs) and rng.random() < 0.3
        if regex:
            match, parts, named = _regex(rng, globs)
            rule["match"] = match
            rule["match_type"] = "regex"
        else:
            parts = _glob(rng, globs)
            globs.append(parts)
            rule["match"] = ".".join(parts)
            named = []
        shapes.append(parts)
        captures = parts.count("*")
        if rng.random() < 0.25:
            rule["match_metric_type"] = rng.choice(["counter", "gauge", "observer", "timer"])
        if rng.random() < 0.1:
            rule["action"] = "drop"
            rule["name"] = "dropped"  # statsd_exporter wants one
            rules.append(rule)
            continue
        rule["name"] = _name(rng, captures, shared_names)
        if "$" not in rule["name"] and rng.random() < 0.3:
            # mostly one text a name; now and then a second one, with which statsd_exporter's scrapes fail
            rule["help"] = f"Help of {rule['name']}." if rng.random() < 0.8 else "Another help."
        labels = {}
        for label in rng.sample(LABEL_NAMES, rng.randint(0, 3)):
            labels[label] = _template(rng, captures, named, bool(regex))
        if labels:
            rule["labels"] = labels
        _observer_options(rng, rule, default_type)
        rules.append(rule)
    _refuse(rng, refused, rules)
    document["mappings"] = rules
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return GeneratedFile(seed, text, _lines(rng, shapes), refused)


def _refuse(rng: random.Random, refused: str, rules: list[dict]) -> None:
    """Put one construct statsd_exporter refuses into the rules."""
    mapped = [rule for rule in rules if rule.get("action") != "drop"] or rules
    rule = rng.choice(mapped)
    if refused == "one_char_label":
        rule.setdefault("labels", {})["x"] = "one"
    elif refused == "day_ttl":
        rule["ttl"] = "1d"
    elif refused == "partial_glob":
        rules.append({"match": f"{rng.choice(FIRST_WORDS)}.pre*.{rng.choice(WORDS)}", "name": "gen_partial"})
    elif refused == "drop_without_name":
        rules.append({"match": f"{rng.choice(FIRST_WORDS)}.*", "action": "drop"})
    elif refused == "summary_options_on_histogram_default":
        rule.pop("observer_type", None)
        rule.pop("histogram_options", None)
        rule["summary_options"] = {"max_age": "1m"}
    elif refused == "outputs":
        rules.append({"match": f"{rng.choice(FIRST_WORDS)}.outputs", "outputs": [{"name": "gen_out"}]})


def _fill(rng: random.Random, parts: list[str]) -> str:
    return ".".join(rng.choice(WORDS) if part == "*" else part for part in parts)


def _names_for(rng: random.Random, parts: list[str]) -> list[str]:
    """Names a rule of these parts takes, and near misses: a part changed, one more, one fewer."""
    names = [_fill(rng, parts) for _ in range(3)]
    miss = list(parts)
    miss[rng.randrange(len(miss))] = rng.choice(WORDS)
    names += [_fill(rng, miss), _fill(rng, [*parts, "*"]), _fill(rng, parts[:-1] or parts)]
    return names


def _lines(rng: random.Random, shapes: list[list[str]]) -> list[str]:
    lines = []
    for parts in shapes:
        for name in _names_for(rng, parts):
            kind = rng.choice(KINDS)
            value = rng.choice(["1", "2", "0.5", "3", "250", "-1", "+2", "1e3"])
            if kind == "c" and value.startswith("-"):
                value = "1"
            rate = rng.choice(["", "", "", "|@0.5", "|@0.25"]) if kind in ("c", "ms", "h") else ""
            tags = ""
            if rng.random() < 0.35:
                keys = rng.sample(TAG_KEYS, rng.randint(1, 2))
                tags = "|#" + ",".join(f"{key}:{rng.choice(['a', 'b'])}" for key in keys)
            lines.append(f"{name}:{value}|{kind}{rate}{tags}")
    rng.shuffle(lines)
    return lines


if __name__ == "__main__":  # python -m tests.mapping_generator SEED: print one file and its lines
    import sys

    generated = generate(int(sys.argv[1]))
    print(generated.text)
    print("\n".join(generated.lines))
