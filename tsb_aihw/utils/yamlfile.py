"""The one YAML reader: one-line errors, no alias bombs, no silently dropped duplicate keys, no empty configs.

PyYAML's own messages span several lines and point at a caret; ``safe_load`` keeps the last of two equal keys
without a word and expands aliases by reference, so a few hundred bytes of nested aliases ("billion laughs")
become a value whose printing or JSON dump never ends. ``load_yaml_file`` / ``load_yaml_text`` refuse all that
with a :class:`ConfigError` naming the file, the line and the fix.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from tsb_aihw.errors import ConfigError

#: most alias uses (``*name``) one file may hold: configs reuse a list or a section a few times, not hundreds
MAX_ALIASES = 100
#: most nodes the document may have with every alias expanded (a real study config has a few hundred)
MAX_EXPANDED_NODES = 100_000
#: a config or preset is a few kB; anything far bigger is not one (and would be slow to parse)
MAX_FILE_BYTES = 1 << 20


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: 'line L, column C: problem'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


class _Refused(yaml.YAMLError):
    """Raised inside the loader; turned into a ConfigError with the file name by the caller."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses duplicate mapping keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise _Refused(f"line {mark.line + 1}: more than {MAX_ALIASES} YAML aliases (*name); write the "
                               "values out (a config this repetitive is likely an alias bomb)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: SafeConstructor raises its own (one-line) error below
                continue
            if first is not None:
                from tsb_aihw.utils.text import short_repr

                raise _Refused(f"line {line}: duplicate key {short_repr(key)} (first on line {first}); YAML keeps "
                               "only the last one: delete or rename one of them")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node) -> int:
    """Nodes of the document with aliases expanded (memoised per node, so the count itself is cheap)."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        if key in active:
            raise _Refused(f"line {n.start_mark.line + 1}: a YAML alias refers to the node that contains it "
                           "(a recursive value); write the value out")
        active.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        active.discard(key)
        memo[key] = min(total, MAX_EXPANDED_NODES + 1)
        if total > MAX_EXPANDED_NODES:
            raise _Refused(f"the YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values (an alias bomb?); "
                           "write the values out")
        return memo[key]

    return size(node)


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document with the limits above (raises ``yaml.YAMLError``; callers add the file name)."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        try:
            return loader.construct_document(node)
        except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
            # PyYAML's constructors crash on some explicit tags, e.g. "!!int" with no digits (IndexError)
            why = " ".join(str(exc).split())[:120]
            raise _Refused(f"a value could not be read ({type(exc).__name__}: {why}); check explicit tags such as "
                           "!!int or !!float and the values after them") from None
    finally:
        loader.dispose()


def check_yaml_path(path: str | os.PathLike, what: str, hint: str = "pass a YAML file") -> Path:
    """``path`` as a Path if it is a readable regular file; a one-line ConfigError saying what it is otherwise.

    Distinguishes "not found" from "is a directory", a name too long for the file system, a FIFO or device
    (reading one would block) and a file far too big to be a config.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {p} not found; {hint}") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ConfigError(f"{what} path {str(p)[:60]}... is too long for the file system "
                              f"({len(os.fsencode(p))} bytes); use a shorter path ({hint})") from None
        raise ConfigError(f"cannot open {what} file {p} ({exc.strerror or exc}); {hint}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{what} file {p} is a directory, not a file; {hint} (e.g. {p}/NAME.yaml)")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} file {p} is not a regular file (a FIFO, socket or device); {hint}")
    if st.st_size > MAX_FILE_BYTES:
        raise ConfigError(f"{what} file {p} is {st.st_size:,} bytes, too big for a YAML config "
                          f"(limit {MAX_FILE_BYTES:,}); {hint}")
    return p


def load_yaml_file(path: str | Path, what: str, allow_empty: bool = False, hint: str = "pass a YAML file") -> Any:
    """Parse ``path``; a ConfigError naming the file, the line and the fix for anything but a sound document.

    An empty or comments-only file is an error unless ``allow_empty``: a config that says nothing is far more
    likely a wrong or truncated file than a request for every default.
    """
    p = check_yaml_path(path, what, hint)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read this {what} ({exc.strerror or exc}); {hint}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}: this {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                          "save it as UTF-8") from None
    try:
        value = load_yaml_text(text)
    except _Refused as exc:
        raise ConfigError(f"{p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: malformed YAML ({yaml_error_text(exc)}); fix the syntax of this {what}") from None
    except RecursionError:
        raise ConfigError(f"{p}: the YAML nests too deeply to be a {what}; flatten it") from None
    if value is None and not allow_empty:
        raise ConfigError(f"{p}: this {what} is empty (no keys, only comments or blank lines); write its keys "
                          "(see configs/ and device_presets/ for examples)")
    return value
