"""Loading the configuration: YAML, dotted ``--set`` overrides, merging, validation.

Unknown keys, wrong types and impossible values fail before any work starts, with the
key path and a fix in the message.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hardmine.config.base import ConfigError
from hardmine.config.model import Config


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Valid keys of the (sub)model at loc, for 'did you mean' hints."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        f = getattr(cur, "model_fields", {}).get(part)
        if f is None:
            return []
        ann = f.annotation
        args = getattr(ann, "__args__", ()) or ()
        nxt = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nxt is None:
            return []
        cur = nxt
    return list(getattr(cur, "model_fields", {}))


def format_validation_error(err: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc) or "<root>"
        if e["type"] == "extra_forbidden":
            valid = _fields_at(Config, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"did you mean {'.'.join(map(str, loc[:-1] + (close[0],)))!r}?" if close else ""
            lines.append(f"  {path}: unknown key. {hint} Valid keys here: {', '.join(valid)}")
        elif not loc:  # a check across sections (Config's own validators): the message names the keys and the fix
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
        else:
            msg = e["msg"]
            got = e.get("input")
            got_s = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {path}: {msg}{got_s}. Fix it in the YAML or with --set {path}=...")
    return "\n".join(lines)


def parse_overrides(overrides: list[str] | None) -> dict:
    """['oof.folds=3', 'data.demo.n_rows=500'] -> nested dict (values parsed as YAML scalars)."""
    out: dict = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set oof.folds=3")
        key, raw = item.split("=", 1)
        if not key.strip() or any(not p for p in key.strip().split(".")):
            raise ConfigError(f"--set {item!r}: the key is empty or has an empty part; expected key.path=value, e.g. --set oof.folds=3")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            problem = str(e).splitlines()[0]
            raise ConfigError(
                f"--set {item!r}: the value {raw!r} is not valid YAML ({problem}). Fix: quote it, e.g. "
                f"--set '{key}=\"{raw}\"', or write a list as [a, b]"
            ) from None
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is set to a value and a section at once")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def from_dict(raw: dict) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None) -> Config:
    """Load YAML, apply --set overrides (relative paths are relative to the working directory)."""
    raw: dict = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping at the top level")
        raw = deep_merge(raw, loaded)
    raw = deep_merge(raw, parse_overrides(overrides))
    return from_dict(raw)
