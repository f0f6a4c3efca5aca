"""A mapping file's text read as go-yaml (statsd_exporter's YAML library) reads it: every mapping with the
line of itself and of each key, and each plain scalar's text as written.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import yaml

from bridge.mapping.schema import MappingError


class Located(dict):
    """A YAML mapping that remembers the line of itself and of each key, and each scalar's text."""

    line: int = 0
    key_lines: dict[str, int]
    # key -> the value's text as written, for plain scalars: go-yaml decodes a scalar into a
    # string field as its text (`1.10`, `010`, `yes` stay so), where PyYAML would give 1.1, 8, True
    texts: dict[str, str]


# go-yaml v2's float resolution: `1e-6`, `1E3` and `.5` are numbers there, strings in YAML 1.1
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _construct_located(loader: yaml.constructor.SafeConstructor, node: yaml.MappingNode) -> Located:
    # keys are their text as written, as go-yaml decodes them into string-keyed maps
    located = Located()
    located.line = node.start_mark.line + 1
    located.key_lines, located.texts = {}, {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(loader.construct_object(key_node))
        located[key] = loader.construct_object(value_node, deep=True)
        located.key_lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode) and located[key] is not None:
            located.texts[key] = value_node.value
    return located


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Located:
        return _construct_located(self, node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _GO_FLOAT, list("-+0123456789."))


# libyaml's parser (PyYAML's C extension, where installed) reads a big file about six times faster than
# PyYAML's pure-Python one, into the same nodes with the same marks, and so, with the same constructors,
# the same values and lines. It reads a few constructs otherwise, where PyYAML's parser refuses the text
# or gives another value: tabs as blanks, tags (`k: !`, `[!!str,x]`), a block scalar's header (`|#`), and
# in `[...]` or `{...}` a `?` in a plain scalar or an explicit key (`[?::]`). A text with any of these, or
# one libyaml refuses, is read by PyYAML's parser, which gives the values and the error messages (with
# their lines) it has always given. tests/unit/test_mapping_yaml.py holds the two to that.
_LIBYAML_UNSURE = ("\t", "!")


class _UnsureError(Exception):
    """libyaml read a construct PyYAML's parser may read otherwise: the text is read again by PyYAML's."""


_FastLoader: type[yaml.CSafeLoader] | None = None
if yaml.__with_libyaml__:

    class _LibyamlLoader(yaml.CSafeLoader):
        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            if _libyaml_unsure(node):
                raise _UnsureError
            return self.construct_document(node)

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Located:
            return _construct_located(self, node)

    _LibyamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LibyamlLoader.construct_mapping)
    _LibyamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _GO_FLOAT, list("-+0123456789."))
    _FastLoader = _LibyamlLoader


def _libyaml_unsure(root: yaml.Node) -> bool:
    """Whether the document holds a block scalar, or in a flow collection a plain scalar that is empty or
    has a `?`, `:` or `#` (what an explicit key in a flow collection leaves, or the two scan otherwise)."""
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    seen: set[int] = set()
    while stack:
        node, in_flow = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            # each place a scalar is met (an alias meets it again): its anchor may stand in a flow collection
            if node.style in ("|", ">"):
                return True
            if in_flow and not node.style and (not node.value or any(mark in node.value for mark in "?:#")):
                return True
            continue
        if id(node) in seen or not isinstance(node, yaml.nodes.CollectionNode):
            continue
        seen.add(id(node))
        children = (
            [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else node.value
        )
        stack += [(child, bool(node.flow_style)) for child in children]
    return False


def parse_yaml(text: str) -> Any:
    """The YAML document, read by libyaml where it reads it as PyYAML's parser does."""
    if _FastLoader is not None and not any(character in text for character in _LIBYAML_UNSURE):
        with contextlib.suppress(Exception):  # whatever libyaml refuses (or raises), PyYAML's parser decides
            return yaml.load(text, Loader=_FastLoader)
    return yaml.load(text, Loader=_Loader)


def scalar_text(entry: Located, key: str) -> Any:
    """A string field's value as go-yaml gives it: the scalar's text, "" for null, else the value."""
    value = entry.get(key)
    if value is None:
        return ""
    return entry.texts.get(key, value) if isinstance(entry, Located) else value


def read_mapping_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise MappingError(f"cannot read the file: {error.strerror or error}", path) from None
    except UnicodeDecodeError as error:
        raise MappingError(f"cannot read the file: not UTF-8 ({error.reason} at byte {error.start})", path) from None
