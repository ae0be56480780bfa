"""The one config schema mechanism: nested dataclasses whose field metadata is the range/choice table.

Study, drift, sweep, refresh and device-preset configs are all dataclass trees built here. A field declared
with :func:`spec` carries its allowed range or choices; :func:`build` turns a raw mapping (YAML, CLI flags)
into the validated tree, :func:`check` re-validates one after code changed it, and :func:`set_dotted` is
the single dotted-override helper behind every ``--flag`` and ``preset_overrides`` key. Every error is one
line: source, dotted key, the value (printed with a bounded repr, so a huge or recursive value cannot hang
the message), what is allowed and the fix.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import types
import typing
from dataclasses import MISSING, field, fields
from typing import Any, Callable, Mapping, Union

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.text import short_repr

_YAML11_EXP = re.compile(r"^[+-]?\d+(\.\d*)?[eE][+-]?\d+$")  # PyYAML reads 1e-3 (no dot) as a string


def show(value: Any) -> str:
    """A bounded repr for error messages (long strings, deep or aliased structures, 400-digit ints)."""
    return short_repr(value)


def spec(default: Any = MISSING, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False, choices: tuple | None = None, required: bool = False, doc: str = "",
         why: str | None = None, what: str | None = None, max_len: int | None = None,
         factory: Callable[[], Any] | None = None, omit_none: bool = False, as_given: bool = False) -> Any:
    """A config field: its default plus the range (``lo``/``hi``, open or closed) or ``choices`` validation
    reads; for lists the range applies to every item. ``why`` is added to out-of-range messages; ``what``
    names a choice ("method") in unknown-choice messages; ``max_len`` bounds a string; ``omit_none``: the key
    is left out by :func:`to_tree` while the value is None (a result key that older files lack); ``as_given``:
    a dataclass value (a training recipe) whose tree form is the keys its config gave (:func:`given_tree`)."""
    meta = dict(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, choices=choices, required=required, doc=doc,
                why=why, what=what, max_len=max_len, omit_none=omit_none, as_given=as_given)
    if required:
        return field(default=None, metadata=meta)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """A nested config section (a dataclass built from a sub-mapping)."""
    return field(default_factory=cls, metadata=dict(section=True))


def variant(table: Mapping[str, type], tag: str, default: str, required: bool = False) -> Any:
    """A section whose dataclass is chosen by the value of its ``tag`` key (e.g. ``noise.model``)."""
    return field(default_factory=table[default],
                 metadata=dict(section=True, variants=dict(table), tag=tag, required=required))


# ---------------------------------------------------------------------------------------------- messages


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def allowed_text(meta: Mapping[str, Any], key: str) -> str:
    """'one of a, b' or '0 < name <= 64': what a field accepts, for messages and generated docs."""
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    name = key.rsplit(".", 1)[-1]
    parts = []
    if lo is not None:
        parts.append(f"{_num(lo)} {'<' if meta.get('lo_open') else '<='} ")
    parts.append(name)
    if hi is not None:
        parts.append(f" {'<' if meta.get('hi_open') else '<='} {_num(hi)}")
    return "".join(parts)


def _constrained(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("choices")) or meta.get("lo") is not None or meta.get("hi") is not None


def _type_text(hint: Any) -> str:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        text = " or ".join(_type_text(a) for a in args)
        return text + (" or null" if len(args) < len(typing.get_args(hint)) else "")
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return f"a list of {_type_text(item)}"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _prefix(src: str) -> str:
    return f"{src}: " if src else ""


# ---------------------------------------------------------------------------------------------- values


def check_value(value: Any, meta: Mapping[str, Any], key: str, src: str = "") -> Any:
    """Range/choices of one value (list items one by one); returns the value (choices lower-cased)."""
    if isinstance(value, str) and meta.get("max_len") is not None and len(value) > meta["max_len"]:
        raise ConfigError(f"{_prefix(src)}{key} = {show(value)} is {len(value)} characters long; allowed: at most "
                          f"{meta['max_len']}")
    if value is None or not _constrained(meta):
        return value
    if isinstance(value, list):
        return [check_value(v, meta, f"{key}[{i}]", src) for i, v in enumerate(value)]
    choices = meta.get("choices")
    if choices:
        norm = value.lower() if isinstance(value, str) and all(isinstance(c, str) for c in choices) else value
        if norm not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problem = f": unknown {meta['what']}" if meta.get("what") else " is not allowed"
            raise ConfigError(f"{_prefix(src)}{key} = {show(value)}{problem}{hint}; allowed: "
                              f"{allowed_text(meta, key)}")
        return norm
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_prefix(src)}{key} = {show(value)} is not finite; allowed: {allowed_text(meta, key)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and (value < lo or (meta.get("lo_open") and value == lo))) or \
            (hi is not None and (value > hi or (meta.get("hi_open") and value == hi))):
        why = f" ({meta['why']})" if meta.get("why") else ""
        raise ConfigError(f"{_prefix(src)}{key} = {show(value)} is out of range; allowed: "
                          f"{allowed_text(meta, key)}{why}")
    return value


def coerce(value: Any, hint: Any, key: str, src: str = "") -> Any:
    """``value`` as type ``hint`` (YAML's ints for floats, '1e-3' strings for floats); one-line error else."""
    origin = typing.get_origin(hint)
    where = f"{_prefix(src)}{key}"
    if isinstance(hint, type) and hasattr(hint, "from_tree"):  # a type that owns its JSON form (Summary)
        return hint.from_tree(value, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build(hint, value, src, key + ".")
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where} is null but must be {_type_text(hint)}; fix: give it a value")
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # Optional[X]: X's own message (a range, a section's key) is the helpful one
            return coerce(value, real[0], key, src)
        for arg in real:
            try:
                return coerce(value, arg, key, src)
            except ConfigError:
                pass
        raise _wrong_type(where, value, hint)
    if value is None and hint is not Any:
        raise ConfigError(f"{where} is null but must be {_type_text(hint)}; fix: give it a value")
    if origin is list:
        if not isinstance(value, list):
            raise _wrong_type(where, value, hint, " such as [a, b]")
        (item,) = typing.get_args(hint) or (Any,)
        return [coerce(v, item, f"{key}[{i}]", src) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong_type(where, value, "a mapping (key: value)")
        item = (typing.get_args(hint) or (str, Any))[1]
        if item is Any:
            return {str(k): v for k, v in value.items()}
        return {str(k): coerce(v, item, f"{key}.{k}", src) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _wrong_type(where, value, hint, " (no quotes)")
        return value
    if hint in (int, float) and isinstance(value, bool):
        raise _wrong_type(where, value, hint)
    if hint is int and isinstance(value, numbers.Integral):
        return int(value)
    if hint is float:
        if isinstance(value, str) and _YAML11_EXP.match(value.strip()):
            value = float(value)
        if isinstance(value, int):
            if abs(value) > 1e300:
                raise ConfigError(f"{where} = {show(value)} is too large; give a finite number")
            value = float(value)
        if not isinstance(value, float):
            raise _wrong_type(where, value, hint)
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _wrong_type(where, value, hint)
    return value


def _wrong_type(where: str, value: Any, hint: Any, extra: str = "") -> ConfigError:
    expected = hint if isinstance(hint, str) else _type_text(hint)
    return ConfigError(f"{where} = {show(value)} has the wrong type ({type(value).__name__}); expected "
                       f"{expected}{extra}")


# ---------------------------------------------------------------------------------------------- trees


def _unknown_key(cls: type, key: Any, valid: list[str], prefix: str, src: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
    where = f"section {prefix[:-1]!r}" if prefix else "the config"
    return ConfigError(f"{_prefix(src)}unknown key {show(prefix + str(key))} in {where}{hint}; valid keys: "
                       f"{', '.join(valid)}")


def build(cls: type, data: Any, src: str = "", prefix: str = "") -> Any:
    """A validated ``cls`` from a raw mapping: unknown keys, types, ranges and required keys checked."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        what = prefix[:-1] or "the top level"
        raise ConfigError(f"{_prefix(src)}{what} must be a mapping (key: value lines), got "
                          f"{type(data).__name__} {show(data)}")
    hints = typing.get_type_hints(cls)
    flds = {f.name: f for f in fields(cls) if f.init}
    for key in data:
        if key not in flds:
            raise _unknown_key(cls, key, list(flds), prefix, src)
    kwargs: dict[str, Any] = {}
    for name, f in flds.items():
        key = prefix + name
        meta = dict(f.metadata)
        if name not in data:
            if meta.get("required") or (f.default is MISSING and f.default_factory is MISSING):
                doc = f" ({meta['doc']})" if meta.get("doc") else ""
                allowed = f" (allowed: {allowed_text(meta, key)})" if _constrained(meta) else ""
                raise ConfigError(f"{_prefix(src)}missing key {key!r}{doc}; add it{allowed}")
            continue
        value = data[name]
        if meta.get("variants"):
            kwargs[name] = _build_variant(meta, value, src, key)
        elif meta.get("section"):
            kwargs[name] = build(hints[name], value, src, key + ".")
        else:
            kwargs[name] = _field_value(value, hints[name], meta, key, src)
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a check between a value's fields (a recipe's __post_init__): say where it sits
        if not prefix:
            raise
        raise ConfigError(f"{_prefix(src)}{prefix[:-1]}: {exc}") from None


#: where :func:`build` notes the keys an ``as_given`` value was given (not a field: no config can set it)
_GIVEN = "_schema_given_keys"


def _field_value(value: Any, hint: Any, meta: Mapping[str, Any], key: str, src: str) -> Any:
    """One leaf field's value, coerced and checked; an ``as_given`` value built from a mapping remembers its keys."""
    out = check_value(coerce(value, hint, key, src), meta, key, src)
    if meta.get("as_given") and isinstance(value, dict) and dataclasses.is_dataclass(out):
        object.__setattr__(out, _GIVEN, tuple(str(k) for k in value))  # frozen values too
    return out


def given_tree(obj: Any) -> JsonObject:
    """An ``as_given`` value as the mapping its config gave: the keys written, defaults spelled out included, plus
    any other field that differs from its default (one made in code: its non-default fields). Why: a recipe was a
    plain mapping before it was typed, and checkpoint keys, store identities and results' configs hold it as
    written; this keeps every one of them. The given keys live on the value itself, so ``dataclasses.replace`` of
    the config or of a section holding it (which passes the same value on), copies and pickles keep them; a value
    rebuilt in code (``replace`` of the recipe itself) is keyed by its non-default fields."""
    tree = non_default_tree(obj)
    keys = getattr(obj, _GIVEN, ())  # carried with the value, so replacing the config or a section around it keeps it
    given = {k: to_tree(getattr(obj, k)) for k in keys}
    return given | {k: v for k, v in tree.items() if k not in given}  # a field changed in code is never dropped


def _build_variant(meta: Mapping[str, Any], data: Any, src: str, key: str) -> Any:
    table, tag = meta["variants"], meta["tag"]
    if not isinstance(data, dict) or tag not in data:
        raise ConfigError(f"{_prefix(src)}section {key!r} needs a key {tag!r} (one of {', '.join(table)}); add it")
    choice = data[tag]
    if not isinstance(choice, str) or choice not in table:
        close = difflib.get_close_matches(str(choice), list(table), n=1, cutoff=0.4)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{_prefix(src)}{key}.{tag} = {show(choice)} is not allowed{hint}; allowed: one of "
                          f"{', '.join(table)}")
    cls = table[choice]
    valid = [f.name for f in fields(cls)]
    for k in data:
        if k not in valid:
            owners = [m for m, c in table.items() if k in {f.name for f in fields(c)}]
            if owners:
                raise ConfigError(f"{_prefix(src)}unknown key {show(key + '.' + str(k))} for {key}.{tag} "
                                  f"{choice!r}: it belongs to {key}.{tag} {' / '.join(map(repr, owners))}; "
                                  f"valid keys: {', '.join(valid)}")
    return build(cls, data, src, key + ".")


def check(obj: Any, src: str = "", prefix: str = "") -> None:
    """Re-validate a built tree (values code or CLI flags set after :func:`build`)."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value):
            check(value, src, key + ".")
        else:  # object.__setattr__: a frozen value (a recipe) is re-checked too; checking changes no value
            object.__setattr__(obj, f.name, _field_value(value, hints[f.name], f.metadata, key, src))


def to_dict(obj: Any) -> JsonObject:
    """The plain mapping a tree was (or could have been) built from."""
    return dataclasses.asdict(obj)


@typing.runtime_checkable
class OwnsTree(typing.Protocol):
    """A value type that writes and reads its own JSON form (``build`` calls its ``from_tree``)."""

    def to_dict(self) -> JsonObject: ...

    @classmethod
    def from_tree(cls, data: Any, where: str) -> Any: ...


def to_tree(obj: Any) -> Any:
    """``obj`` as plain JSON-able data, the inverse of :func:`build`: dataclasses as mappings (a field marked
    ``omit_none`` left out while None), types that own their JSON form through their ``to_dict``."""
    if isinstance(obj, OwnsTree):  # Summary: None for an undefined std or CI
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _field_tree(f, getattr(obj, f.name)) for f in fields(obj)
                if not (f.metadata.get("omit_none") and getattr(obj, f.name) is None)}
    if isinstance(obj, dict):
        return {k: to_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_tree(v) for v in obj]
    return obj


def _field_tree(f: Any, value: Any) -> Any:
    return given_tree(value) if f.metadata.get("as_given") and value is not None else to_tree(value)


def _is_default(f: Any, value: Any) -> bool:
    if f.default is not MISSING:
        return bool(value == f.default)
    return f.default_factory is not MISSING and bool(value == f.default_factory())


def non_default_tree(obj: Any) -> JsonObject:
    """The tree as nested mappings holding only the leaves that differ from their field defaults (a variant's
    tag always counts; sections with nothing left are dropped). What results are keyed by: it stays the same when
    the schema gains a field with a neutral default. A default that changes results needs a new cell version."""
    out: JsonObject = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("as_given"):  # a value (None or given), not a section: as its config gave it
            if not _is_default(f, value):
                out[f.name] = given_tree(value)
        elif dataclasses.is_dataclass(value):
            sub = non_default_tree(value)
            if f.metadata.get("variants"):
                sub[f.metadata["tag"]] = getattr(value, f.metadata["tag"])
            if sub:
                out[f.name] = sub
        elif not _is_default(f, value):
            out[f.name] = value
    return out


def non_default_leaves(obj: Any) -> JsonObject:
    """``{dotted key: value}`` of :func:`non_default_tree` (preset identities)."""
    out: JsonObject = {}

    def walk(node: JsonObject, prefix: str, schema: Any) -> None:
        for key, value in node.items():
            sub = getattr(schema, key, None)
            if isinstance(value, dict) and dataclasses.is_dataclass(sub):
                walk(value, f"{prefix}{key}.", sub)
            else:
                out[prefix + key] = value

    walk(non_default_tree(obj), "", obj)
    return out


def leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, type hint, field) of every leaf of a schema; variant sections list all their variants."""
    out: list[tuple[str, Any, Any]] = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.metadata.get("variants"):
            for c in f.metadata["variants"].values():
                out += leaf_fields(c, prefix + f.name + ".")
        elif f.metadata.get("section"):
            out += leaf_fields(hints[f.name], prefix + f.name + ".")
        else:
            out.append((prefix + f.name, hints[f.name], f))
    return out


def set_dotted(raw: JsonObject, dotted: str, value: Any, src: str = "") -> None:
    """Set ``a.b.c`` (or ``a__b__c``) in a raw mapping, creating sections; the one override helper."""
    key = str(dotted).replace("__", ".")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"{_prefix(src)}override key {show(dotted)} is malformed; use section.key, e.g. "
                          "noise.sigma (or noise__sigma as a keyword)")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{_prefix(src)}override {key!r}: {part!r} is a value, not a section; override "
                              f"{part!r} itself")
        node = child
    node[parts[-1]] = value


def with_overrides(raw: JsonObject, overrides: JsonObject) -> JsonObject:
    """A deep copy of ``raw`` with every dotted override applied (``None`` values are skipped: unset flags)."""
    import copy

    out = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        if value is not None:
            set_dotted(out, key, value)
    return out


def differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like trees (for 'another config' messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += differing_keys(a.get(k, MISSING), b.get(k, MISSING), f"{prefix}{k}.")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [k for i, (x, y) in enumerate(zip(a, b)) for k in differing_keys(x, y, f"{prefix}{i}.")]
    return [] if a == b else [prefix[:-1] or "(root)"]
