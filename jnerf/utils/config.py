"""Python config files as nested, attribute-accessible dicts, with ``_base_`` inheritance and strict keys.

A config file is a Python module; its top-level variables (not starting with ``_`` and not modules, functions or
classes) become keys. ``_base_ = 'base.py'`` (or a list) names configs, relative to this file, that it extends:
dicts are merged deeply and the child wins. Unlike JNeRF's config, reading a key that does not exist raises an
error naming the key and the closest existing one, and so does a child config or a ``--opts`` override that sets a
key the base does not have (a typo would otherwise silently do nothing). A dict that really replaces its base
entry, or a key that is really new, says so with ``_replace_=True`` inside the dict / ``_new_keys_ = [...]``
at the top of the file.
"""
import ast
import copy
import importlib.util
import inspect
import os
import pprint
import traceback
import types

from .errors import ConfigFileError, ConfigValueError
from .registry import ConfigKeyError, closest

__all__ = ["Config", "load_config", "save_cfg", "parse_overrides", "apply_overrides", "merge_into",
           "ConfigKeyError"]

BASE_KEY = "_base_"
REPLACE_KEY = "_replace_"
NEW_KEYS_KEY = "_new_keys_"


class Config(dict):
    """A dict whose keys read as attributes; missing keys raise ``ConfigKeyError`` with a suggestion."""

    def __init__(self, data=None, path="cfg"):
        super().__init__()
        object.__setattr__(self, "_path", path)
        for key, value in (data or {}).items():
            self[key] = value

    def __setitem__(self, key, value):
        super().__setitem__(key, _wrap(value, f"{self._path}.{key}"))

    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise self.missing(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __delattr__(self, key):
        del self[key]

    def __deepcopy__(self, memo):
        return Config(copy.deepcopy(dict(self), memo), self._path)

    def missing(self, key):
        near = closest(key, self.keys())
        hint = f" Did you mean '{near}'?" if near else ""
        return ConfigKeyError(f"config has no key '{self._path}.{key}'.{hint}")

    def get(self, key, default=None):
        return dict.get(self, key, default)

    def to_dict(self):
        return {k: v.to_dict() if isinstance(v, Config) else
                [x.to_dict() if isinstance(x, Config) else x for x in v] if isinstance(v, list) else v
                for k, v in self.items()}

    def dump(self):
        """The config as Python source that ``load_config`` reads back."""
        lines = ["# Resolved jnerf config (all _base_ files merged, overrides applied).", "import numpy as np", ""]
        for key, value in self.to_dict().items():
            lines.append(f"{key} = {pprint.pformat(_plain(value), sort_dicts=False, width=110)}")
        return "\n".join(lines) + "\n"


def _plain(value):
    """Numpy values printed as Python literals so that a dumped config is readable and reloadable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _wrap(value, path):
    if isinstance(value, Config):
        return value
    if isinstance(value, dict):
        return Config(value, path)
    if isinstance(value, list):
        return [_wrap(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _module_vars(path):
    spec = importlib.util.spec_from_file_location(f"_jnerf_cfg_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigFileError(f"{path}:{e.lineno}: syntax error in the config: {e.msg}") from e
    except Exception as e:  # a config is Python: anything it raises is the config's fault
        line = next((f.lineno for f in reversed(traceback.extract_tb(e.__traceback__)) if f.filename == path), "?")
        raise ConfigFileError(f"{path}:{line}: the config raised {type(e).__name__}: {e}") from e
    out = {}
    for key, value in vars(module).items():
        if key.startswith("__") or isinstance(value, types.ModuleType) or inspect.isfunction(value) \
                or inspect.isclass(value):
            continue
        out[key] = value
    return out


def _merge(base, child, path, allow_new, strict=True):
    """Deep-merge ``child`` into a copy of ``base``; with ``strict``, keys new to ``base`` must be declared."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        full = f"{path}.{key}" if path else key
        if strict and key not in base and full not in allow_new and key not in allow_new:
            near = closest(key, base.keys())
            hint = f" Did you mean '{near}'?" if near else ""
            raise ConfigKeyError(f"config sets '{full}', which its base config does not have.{hint} "
                                 f"(If it is meant to be new, list it in {NEW_KEYS_KEY}.)")
        if isinstance(value, dict) and isinstance(base.get(key), dict) and not value.get(REPLACE_KEY, False):
            out[key] = _merge(base[key], value, full, allow_new, strict)
        else:
            if strict and key in base:
                check_same_kind(full, base[key], value)
            out[key] = copy.deepcopy(value)
            if isinstance(value, dict):
                out[key].pop(REPLACE_KEY, None)
    return out


def _load_dict(path):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    data = _module_vars(path)
    bases = data.pop(BASE_KEY, [])
    allow_new = set(data.pop(NEW_KEYS_KEY, []))
    bases = [bases] if isinstance(bases, str) else list(bases)
    if not bases:
        return {k: v for k, v in data.items() if not k.startswith("_")}
    merged = {}
    for base in bases:  # several bases combine freely; only the child is held to their keys
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigFileError(f"{path}: its base config '{base}' was not found (looked for {base_path})")
        merged = _merge(merged, _load_dict(base_path), "", allow_new, strict=False)
    child = {k: v for k, v in data.items() if not k.startswith("_")}
    return _merge(merged, child, "", allow_new)


def _literal(node):
    """A Python literal, where ``dict(key=literal, ...)`` (the configs' own spelling) also counts."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def parse_overrides(opts):
    """``['a.b=1', 'c=foo', 'd=dict(e=2)']`` -> ``[(['a','b'], 1), (['c'], 'foo'), (['d'], {'e': 2})]``; values
    parsed as Python literals (``dict(...)`` with literal arguments included)."""
    parsed = []
    for opt in opts or []:
        if "=" not in opt:
            raise ValueError(f"override '{opt}' is not of the form key.path=value")
        key, raw = opt.split("=", 1)
        try:
            value = _literal(ast.parse(raw.strip(), mode="eval").body)
        except (ValueError, SyntaxError, TypeError):
            value = raw  # a bare word is a string
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_overrides(cfg, opts):
    """Set each ``key.path=value``; every key on the path must already exist."""
    for keys, value in parse_overrides(opts):
        node = cfg
        for i, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                prefix = ".".join(keys[:i]) or "cfg"
                near = closest(key, node.keys()) if isinstance(node, dict) else None
                hint = f" Did you mean '{near}'?" if near else ""
                raise ConfigKeyError(f"override '{'.'.join(keys)}': '{prefix}' has no key '{key}'.{hint}")
            if i == len(keys) - 1:
                check_same_kind(".".join(keys), node[key], value)
                node[key] = value
            else:
                node = node[key]
    return cfg


def _kind(value):
    """The kind of config value an override must keep: None when any value may replace it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean (True/False)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a dict"
    return None


def check_same_kind(key, old, new):
    """An override keeps the kind of the value it replaces (an int stays an int, a number may be an int, a dict is
    not replaced by a number); None on either side is free. Raises ConfigValueError naming the key."""
    kind = _kind(old)
    if kind is None or new is None:
        return
    named = lambda v: isinstance(v, str) or (isinstance(v, dict) and "type" in v)  # a component: name or config
    if named(old) and named(new):
        return
    ok = {"a boolean (True/False)": isinstance(new, bool),
          "an integer": isinstance(new, int) and not isinstance(new, bool),
          "a number": isinstance(new, (int, float)) and not isinstance(new, bool),
          "a string": isinstance(new, str), "a list": isinstance(new, (list, tuple)),
          "a dict": isinstance(new, dict)}[kind]
    if not ok:
        raise ConfigValueError(f"'{key}': expected {kind} like its current value {old!r}, got {new!r} "
                               f"({type(new).__name__})")


def merge_into(cfg, overrides, name="overrides"):
    """Deep-merge the dict ``overrides`` into ``cfg`` in place; every key must already exist (typo guard)."""
    merged = _merge(cfg.to_dict(), dict(overrides), name, allow_new=set())
    for key, value in merged.items():
        cfg[key] = value
    return cfg


def load_config(path, opts=None):
    """Load a config file (with its bases) and apply ``key=value`` overrides."""
    cfg = Config(_load_dict(path))
    object.__setattr__(cfg, "_source", os.path.abspath(path))
    return apply_overrides(cfg, opts)


def save_cfg(cfg, path):
    """Write the resolved config as Python (atomically)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(cfg.dump())
    os.replace(tmp, path)
