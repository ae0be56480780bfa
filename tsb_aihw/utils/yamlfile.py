"""Read a YAML file with one-line errors: PyYAML's own messages span several lines and point at a caret."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tsb_aihw.errors import ConfigError


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: 'line L, column C: problem'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def load_yaml_file(path: str | Path, what: str) -> Any:
    """``yaml.safe_load`` of ``path``; ConfigError naming the file, the line and the fix otherwise."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: malformed YAML ({yaml_error_text(exc)}); fix the syntax of this {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read this {what} ({exc}); pass a readable UTF-8 YAML file") from None
