"""Reading a small YAML config file defensively, with line numbers kept for error messages.

PyYAML composes aliases by reference, so a 500-byte file of nested anchors ("billion
laughs") is cheap to parse but expands exponentially in anything that walks it later
(validation, dumping). The node graph is therefore measured as if expanded, with shared
nodes counted once per use, before anything is constructed. Errors give a line and column
and PyYAML's description of the problem, never the file's text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_POLICY_BYTES = 64 * 1024
MAX_ALIASES = 100            # anchors are rare in a policy; a handful covers honest reuse
MAX_EXPANDED_NODES = 20_000  # values after alias expansion; a full policy has a few hundred
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlGuardError(ValueError):
    """The file is not a readable, reasonable YAML document; the message says why and where."""


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    root: Node

    def line_of(self, loc: tuple) -> int | None:
        """1-based line of the deepest node on the path `loc` (keys and list indices)."""
        node, line = self.root, self.root.start_mark.line + 1
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            node, line = found[1], found[0].start_mark.line + 1
        return line


class _CountingLoader(yaml.SafeLoader):
    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlGuardError(f"line {mark.line + 1}: more than {MAX_ALIASES} YAML aliases")
        return super().compose_node(parent, index)


def read_yaml(path: Path, max_bytes: int = MAX_POLICY_BYTES) -> YamlDocument:
    """One YAML document from `path`; YamlGuardError (or OSError) otherwise."""
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise YamlGuardError(f"file is larger than {max_bytes // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlGuardError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    return parse_yaml(text)


def parse_yaml(text: str) -> YamlDocument:
    loader = _CountingLoader(text)
    try:
        root = loader.get_single_node()
        if root is None or (isinstance(root, ScalarNode) and root.tag.endswith(":null")):
            raise YamlGuardError("the file is empty; a policy needs at least one field (e.g. name: my-policy)")
        _check_expansion(root)
        _check_duplicate_keys(root)
        return YamlDocument(loader.construct_document(root), root)
    except yaml.MarkedYAMLError as exc:
        raise YamlGuardError(_describe(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlGuardError(f"not valid YAML: {type(exc).__name__}") from None
    except RecursionError:
        raise YamlGuardError("not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _describe(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"not valid YAML: {where}{exc.problem or exc.context or 'syntax error'}"


def _check_expansion(root: Node) -> None:
    """Fails when the document, aliases expanded, holds more than MAX_EXPANDED_NODES values."""
    sizes: dict[int, int] = {}
    stack: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in stack:
            raise YamlGuardError(f"line {node.start_mark.line + 1}: a YAML alias refers to itself")
        stack.add(key)
        total = 1 + sum(size(child) for child in _children(node))
        stack.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise YamlGuardError(f"line {node.start_mark.line + 1}: YAML aliases expand to more than "
                                 f"{MAX_EXPANDED_NODES} values (nested anchors, 'billion laughs')")
        sizes[key] = total
        return total

    size(root)


def _children(node: Node):
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_duplicate_keys(root: Node) -> None:
    seen_nodes: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            _unique_keys(node)
        todo.extend(_children(node))


def _unique_keys(node: MappingNode) -> None:
    first: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
            continue
        line = key.start_mark.line + 1
        if key.value in first:
            raise YamlGuardError(f"line {line}: duplicate key {key.value[:40]!r} (first at line {first[key.value]})")
        first[key.value] = line


def _child(node: Node, part) -> tuple[Node, Node] | None:
    """(the node that names `part`, its value): a mapping's key, or a list item itself."""
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part], node.value[part]
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                return key, value
    return None
