"""Mapping files in statsd_exporter's YAML schema: read, validate, compile.

Every problem is a MappingError naming the file, the line and the key, so `--check-config` and start-up
can say exactly what to fix. The schema is bridge/mapping/schema.py, the reading of YAML
bridge/mapping/yaml_reading.py, the checks of single values bridge/mapping/checks.py; this module puts
rules together.
"""

from __future__ import annotations

from typing import Any

import re2
import yaml

from bridge.mapping.checks import Checker, observer_options
from bridge.mapping.globs import glob_to_regex
from bridge.mapping.schema import (
    DEFAULT_BUCKETS,
    DEFAULT_NATIVE_FACTOR,
    DEFAULT_NATIVE_MAX_BUCKETS,
    DEFAULTS_KEYS,
    EXPORTER_GLOB,
    EXPORTER_LABEL_NAME,
    EXTENSION_EFFECTS,
    EXTENSION_KEYS,
    GLOB_COMPONENT,
    LABEL_NAME,
    MAPPING_KEYS,
    MATCH_KEYS,
    METRIC_TYPES,
    NAME_TEMPLATE,
    OBSERVER_TYPES,
    OUTPUT_KEYS,
    REAPER_KEYS,
    TOP_KEYS,
    VALUE_OPS,
    CompiledPattern,
    MappingConfig,
    MappingError,
    Output,
    Reaper,
    Rule,
)
from bridge.mapping.yaml_reading import Located, parse_yaml, read_mapping_file, scalar_text
from bridge.series.names import underscored
from bridge.series.quantiles import SummaryOptions

# the names other packages take from here
__all__ = [
    "DEFAULT_BUCKETS", "LABEL_NAME", "VALUE_OPS", "MappingConfig", "MappingError", "Output", "Rule",
    "load_mapping", "load_mapping_file", "read_mapping_file",
]  # fmt: skip


# Go's regexp is RE2's dialect (\z, \pL, [[:alpha:]], ASCII \w) and RE2 matches in linear time: no
# pattern in a mapping file can make one datagram stall the bridge, as a backtracking `re` could
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error comes back as MappingError, not as a line on stderr


# The compiled patterns of the last file loaded, by match type and text. Compiling is most of a big file's
# load after the YAML (Python's `re` compiler, a few thousand globs), so a reload compiles only the rules
# the file before did not have. Each load replaces them, so they hold one file's patterns; compiled
# patterns are immutable, and the old rules and the new can share them.
_last_patterns: dict[tuple[str, str], CompiledPattern] = {}


def _compile_pattern(check: Checker, entry: Located, match: str, match_type: str) -> CompiledPattern:
    key = (match_type, match)
    pattern = check.patterns.get(key) or _last_patterns.get(key)
    if pattern is None:
        pattern = _compile_new_pattern(check, entry, match, match_type)
    check.patterns[key] = pattern
    return pattern


def _compile_new_pattern(check: Checker, entry: Located, match: str, match_type: str) -> CompiledPattern:
    if match_type == "glob":
        if not all(GLOB_COMPONENT.match(part) for part in match.split(".")):
            raise check.fail(entry, "match", f"invalid glob {match!r}: dot-separated parts of letters, digits, _, -, *")
        return glob_to_regex(match)
    try:
        return re2.compile(match, _RE2_OPTIONS)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise check.fail(entry, "match", f"invalid regex {match!r}: {reason}") from None


def _string_map(check: Checker, entry: Located, key: str, label_keys: bool) -> dict[str, str]:
    raw = entry.get(key)
    block = check.mapping(raw, entry, key, set(raw) if isinstance(raw, dict) else set())
    for name, value in block.items():
        if not isinstance(name, str) or (label_keys and not _valid_label_name(check, block, name)):
            raise check.fail(block, str(name), "invalid label name (letters, digits, _; no leading digit)")
        if isinstance(value, (dict, list)):
            raise check.fail(block, name, f"must be a string, got {value!r}")
        if key == "labels" and not EXPORTER_LABEL_NAME.match(name):
            check.refused(block, name, _exporter_label_refusal(name))
    if label_keys and check.utf8_names:
        read_as: dict[str, str] = {}
        for name in block:
            other = read_as.setdefault(underscored(name), name)
            if other != name:
                raise check.fail(
                    block, name, f"reads as `{other}` to a Prometheus 2 scraper (both `{underscored(name)}`)"
                )
    return {name: scalar_text(block, name) for name in block}


def _exporter_label_refusal(name: str) -> str:
    if LABEL_NAME.match(name):
        return (
            f'label name `{name}` has one character ("invalid label key"; its label names need two); '
            "Prometheus allows it, and so does the bridge"
        )
    return f'label name `{name}` is not `[a-zA-Z_][a-zA-Z0-9_]+` ("invalid label key"); --statsd.utf8-names allows it'


def _valid_label_name(check: Checker, block: Located, name: str) -> bool:
    """Letters, digits and _; under --statsd.utf8-names any name but an empty one or one holding `:` (legacy
    in a metric name, so no scheme would escape it in a label name, where it is invalid), noted where
    statsd_exporter would rewrite it."""
    if LABEL_NAME.match(name):
        return True
    if not check.utf8_names or not name or ":" in name:
        return False
    check.rewritten(block, name, name)
    return True


def _valid_name_template(check: Checker, entry: Located, name: str) -> bool:
    """statsd_exporter's name check; under --statsd.utf8-names any name, noted where it would be rewritten."""
    if NAME_TEMPLATE.match(name):
        return True
    if not check.utf8_names:
        return False
    check.rewritten(entry, "name", name)
    check.refused(entry, "name", f'metric name {name!r} ("doesn\'t match regex"); --statsd.utf8-names allows it')
    return True


def _tag_list(check: Checker, entry: Located, key: str) -> tuple[str, ...]:
    value = entry.get(key) or []
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise check.fail(entry, key, "must be a list of tag names")
    return tuple(value)


def _when(check: Checker, entry: Located) -> dict[str, tuple[str, ...]]:
    raw = entry.get("when")
    block = check.mapping(raw, entry, "when", set(raw) if isinstance(raw, dict) else set())
    when = {}
    for tag, wanted in block.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise check.fail(block, str(tag), "must be a tag value or a list of them")
        when[str(tag)] = tuple(str(v) for v in values)
    return when


def _native_options(options: dict[str, Any], config: MappingConfig) -> tuple[float, int]:
    """A mapping's (factor, max buckets): each the defaults' unless above 0, as statsd_exporter's registry."""
    factor = options.get("native_factor", 0.0)
    max_buckets = options.get("native_max_buckets", 0)
    return (factor if factor > 0 else config.native[0], max_buckets if max_buckets > 0 else config.native[1])


def _compile_output(check: Checker, entry: Located, config: MappingConfig, needs_name: bool) -> Output:
    name = scalar_text(entry, "name")
    if not isinstance(name, str):
        raise check.fail(entry, "name", f"must be a string, got {name!r}")
    if not isinstance(scalar_text(entry, "help"), str):
        raise check.fail(entry, "help", f"must be a string, got {entry['help']!r}")
    if needs_name:
        if not name:
            raise check.fail(entry, "name" if "name" in entry else "", "a mapping needs a `name` (or `action: drop`)")
        if not _valid_name_template(check, entry, name):
            raise check.fail(entry, "name", f"{name!r} is not a valid metric name (letters, digits, _, $n)")
    elif not name:
        check.refused(
            entry,
            "",
            "a mapping without `name`, a drop rule's too (\"metric mapping didn't set a metric "
            'name"); give it one, e.g. `name: dropped`',
        )
    elif not NAME_TEMPLATE.match(name):
        check.refused(entry, "name", f"{name!r} is not a metric name, a drop rule's neither")
    options = observer_options(check, entry, config)
    scale = entry.get("scale")
    output = Output(
        name=name,
        labels=_string_map(check, entry, "labels", label_keys=True),
        observer_type=options.get("observer_type", ""),
        buckets=options.get("buckets", config.buckets),
        native=_native_options(options, config),
        summary=options.get("summary", config.summary),
        help=scalar_text(entry, "help"),
        ttl=check.duration(entry["ttl"], entry, "ttl") if entry.get("ttl") is not None else config.ttl,
        scale=None if scale is None else check.number(scale, entry, "scale"),
        honor_labels=bool(entry.get("honor_labels", False)),
        set_window=check.set_window(entry, config.set_window),
        line=entry.line,
    )
    if entry.get("type"):
        output.type = check.choice(entry["type"], entry, "type", tuple(VALUE_OPS))
        if output.type in OBSERVER_TYPES:
            if output.observer_type and output.observer_type != output.type:
                raise check.fail(entry, "observer_type", f"contradicts type: {output.type}")
            output.observer_type = output.type
    if entry.get("value"):
        if not output.type:
            raise check.fail(entry, "value", "needs a `type` (counter, gauge, histogram or summary) beside it")
        output.value = check.choice(entry["value"], entry, "value", VALUE_OPS[output.type])
    if "tags" in entry:
        output.tags = _string_map(check, entry, "tags", label_keys=True)
    output.required = _tag_list(check, entry, "required")
    output.non_empty = _tag_list(check, entry, "non_empty")
    output.when = _when(check, entry)
    output.static = "$" not in output.name and not any("$" in v for v in output.labels.values())
    return output


def _compile_rule(check: Checker, entry: Any, config: MappingConfig, match_type_default: str, index: int) -> Rule:
    entry = check.mapping(entry, None, f"mappings[{index}]", MAPPING_KEYS)
    match = scalar_text(entry, "match")
    match_type = check.choice(entry.get("match_type") or match_type_default, entry, "match_type", ("glob", "regex"))
    if not isinstance(match, str) or (not match and match_type == "glob"):
        raise check.fail(entry, "match" if "match" in entry else "", "every glob mapping needs a non-empty `match`")
    if match_type == "glob" and not EXPORTER_GLOB.match(match) and all(map(GLOB_COMPONENT.match, match.split("."))):
        check.refused(
            entry,
            "match",
            f'glob `{match}` ("invalid match"): its globs take `*` only as a whole '
            "part, no `:`, and no first part starting with a digit or `-`",
        )
    action = check.choice(entry.get("action") or "map", entry, "action", ("map", "drop"))
    for key in sorted(EXTENSION_KEYS & set(entry)):
        check.extension(
            entry,
            key,
            f"statsd_exporter ignores `{key}`, a mapping extension "
            f"of the bridge's: rolled back, this rule {EXTENSION_EFFECTS[key]}",
        )
    if "outputs" in entry:
        check.extension(
            entry,
            "outputs",
            "statsd_exporter refuses this file: `outputs` is a "
            "mapping extension of the bridge's, and the rule has no `name` of its own (\"metric mapping "
            "didn't set a metric name\")",
        )
        for key in sorted(set(entry) - MATCH_KEYS):
            raise check.fail(entry, key, "goes in each of `outputs`, not beside it")
        raw = entry["outputs"]
        if action == "drop" or not isinstance(raw, list) or not raw:
            raise check.fail(entry, "outputs", "must be a non-empty list of outputs (and the action map)")
        outputs = [
            _compile_output(check, check.mapping(item, entry, "outputs", OUTPUT_KEYS), config, needs_name=True)
            for item in raw
        ]
    else:
        outputs = [_compile_output(check, entry, config, needs_name=action == "map")]
    return Rule(
        match=match,
        match_type=match_type,
        pattern=_compile_pattern(check, entry, match, match_type),
        outputs=outputs,
        action=action,
        match_metric_type=(
            check.choice(entry["match_metric_type"], entry, "match_metric_type", METRIC_TYPES)
            if entry.get("match_metric_type")
            else ""
        ),
        line=entry.line,
    )


def _compile_reaper(check: Checker, top: Located) -> Reaper:
    block = check.mapping(top.get("reaper"), top, "reaper", REAPER_KEYS)
    reaper = Reaper()
    if block.get("label") is not None:
        if not isinstance(block["label"], str) or not LABEL_NAME.match(block["label"]):
            raise check.fail(block, "label", f"{block['label']!r} is not a label name")
        reaper.label = block["label"]
    if block.get("after") is not None:
        reaper.after = check.duration(block["after"], block, "after")
    if block.get("interval") is not None:
        reaper.interval = check.duration(block["interval"], block, "interval")
    return reaper


def load_mapping(text: str, path: str = "<mapping>", utf8_names: bool = False) -> MappingConfig:
    """Compile a mapping file's text; `utf8_names`: --statsd.utf8-names, under which names and label names may
    hold any UTF-8. Raises MappingError naming file, line and key."""
    check = Checker(path, utf8_names)
    try:
        document = parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise MappingError(f"not valid YAML: {getattr(error, 'problem', None) or error}", path, line) from None
    top = check.mapping(document, None, "", TOP_KEYS)
    config = MappingConfig(path=path, utf8_names=utf8_names)
    config.reaper = _compile_reaper(check, top)
    if top.get("reaper") is not None:
        check.extension(
            top,
            "reaper",
            "statsd_exporter ignores `reaper`, a mapping "
            "extension of the bridge's: rolled back, the series of silent sources stay",
        )
    if top.get("statsd_bridge_extensions") is not None:
        if top["statsd_bridge_extensions"] is not True:
            raise check.fail(top, "statsd_bridge_extensions", "must be true (the file means to use the extensions)")
        config.extensions_declared = top.key_lines["statsd_bridge_extensions"]

    defaults = check.mapping(top.get("defaults"), top, "defaults", DEFAULTS_KEYS)
    options = observer_options(check, defaults, None)
    config.observer_type = options.get("observer_type", "summary")
    config.observer_type_given = "observer_type" in options
    config.buckets = options.get("buckets", DEFAULT_BUCKETS)
    config.native = (
        options.get("native_factor") or DEFAULT_NATIVE_FACTOR,
        options.get("native_max_buckets") or DEFAULT_NATIVE_MAX_BUCKETS,
    )
    config.summary = options.get("summary", SummaryOptions())
    if defaults.get("ttl") is not None:
        config.ttl = check.duration(defaults["ttl"], defaults, "ttl")
    config.set_window = check.set_window(defaults, 0.0)
    config.glob_disable_ordering = bool(defaults.get("glob_disable_ordering", False))
    match_type = check.choice(defaults.get("match_type") or "glob", defaults, "match_type", ("glob", "regex"))

    mappings = top.get("mappings") or []
    if not isinstance(mappings, list):
        raise check.fail(top, "mappings", "must be a list")
    config.rules = [_compile_rule(check, entry, config, match_type, i) for i, entry in enumerate(mappings)]
    config.notes, config.extensions = check.notes, check.extensions
    _last_patterns.clear()
    _last_patterns.update(check.patterns)
    return config


def load_mapping_file(path: str, utf8_names: bool = False) -> MappingConfig:
    return load_mapping(read_mapping_file(path), path, utf8_names)
