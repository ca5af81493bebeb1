"""Registries that map the ``type`` key of a config dict to a class, and the builder that uses them.

The pattern is mmcv's, as JNeRF borrowed it: a class registers with ``@NETWORKS.register_module()`` and a config
dict such as ``dict(type='HashGridEncoder', n_levels=16)`` is turned into an instance by ``build_from_cfg``.
Unlike JNeRF, an unknown type or a misspelt argument is an error that names the culprit and the closest valid name.
"""
import difflib
import inspect

__all__ = ["Registry", "build_from_cfg", "build_settings", "ConfigKeyError", "closest",
           "DATASETS", "ENCODERS", "NETWORKS", "SAMPLERS", "RENDERERS", "LOSSES", "OPTIMS", "SCHEDULERS",
           "EXPORTERS"]


class ConfigKeyError(KeyError):
    """A key or type name that does not exist; the message names it and the closest known one."""

    def __str__(self):  # KeyError would otherwise print the message with quotes around it
        return str(self.args[0]) if self.args else ""


def closest(name, candidates):
    """The candidate most similar to ``name``, or None when nothing is close."""
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.5)
    return match[0] if match else None


def _suggest(name, candidates):
    near = closest(name, candidates)
    return f" Did you mean '{near}'?" if near else ""


class Registry:
    """A named table of classes (or functions) that configs refer to by name."""

    def __init__(self, name):
        self.name = name
        self._modules = {}

    def register_module(self, name=None, module=None):
        """Register ``module`` under ``name`` (default: its ``__name__``); usable as a decorator."""
        def _register(mod):
            key = name or mod.__name__
            if key in self._modules and self._modules[key] is not mod:
                raise KeyError(f"{key} is already registered in registry {self.name}")
            self._modules[key] = mod
            return mod
        if module is not None:
            return _register(module)
        return _register

    def get(self, name):
        if name not in self._modules:
            import jnerf  # components register when their modules are first imported
            jnerf.register_all()
        if name not in self._modules:
            known = sorted(self._modules)
            raise ConfigKeyError(f"'{name}' is not registered in {self.name}.{_suggest(name, known)} "
                                 f"Registered: {', '.join(known) or '(none)'}")
        return self._modules[name]

    def __contains__(self, name):
        return name in self._modules

    def names(self):
        return sorted(self._modules)

    def __repr__(self):
        return f"Registry({self.name}: {', '.join(self.names())})"


def _check_kwargs(cls, kwargs, where=None):
    """Raise a clear error for arguments the constructor does not take (a misspelt config key)."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in accepted:
            owner = f"config group '{where}' ({cls.__name__})" if where else cls.__name__
            raise ConfigKeyError(f"{owner} has no argument '{key}'.{_suggest(key, accepted)} "
                                 f"Accepted: {', '.join(accepted)}")


def build_from_cfg(cfg, registry, **kwargs):
    """Build an object from a config.

    ``cfg`` is a dict with a ``type`` key (the other keys are constructor arguments), a bare type name, a list of
    such configs (built one by one into a list) or None. ``kwargs`` carry run-time objects (parameters, a dataset)
    and override keys of the same name.
    """
    if cfg is None:
        return None
    if isinstance(cfg, str):
        cls = registry.get(cfg)
        _check_kwargs(cls, kwargs)
        return cls(**kwargs)
    if isinstance(cfg, (list, tuple)):
        return [build_from_cfg(c, registry, **kwargs) for c in cfg]
    if not hasattr(cfg, "keys"):
        raise TypeError(f"cannot build from {type(cfg).__name__}: expected a dict with a 'type' key")
    args = {k: cfg[k] for k in cfg.keys()}
    if "type" not in args:
        raise ConfigKeyError(f"config for {registry.name} has no 'type' key (keys: {', '.join(args)})")
    cls = registry.get(args.pop("type"))
    args.update(kwargs)
    _check_kwargs(cls, args)
    return cls(**args)


def build_settings(cls, cfg, where, **kwargs):
    """``cls(**cfg, **kwargs)`` for a config group without a ``type`` key (a settings class such as the runner's
    ``TrainSettings``), with the same closest-name error as ``build_from_cfg`` for a key the class does not take."""
    args = {k: cfg[k] for k in (cfg or {}).keys()}
    args.update(kwargs)
    _check_kwargs(cls, args, where)
    return cls(**args)


DATASETS = Registry("DATASETS")
ENCODERS = Registry("ENCODERS")
NETWORKS = Registry("NETWORKS")
SAMPLERS = Registry("SAMPLERS")
RENDERERS = Registry("RENDERERS")
LOSSES = Registry("LOSSES")
OPTIMS = Registry("OPTIMS")
SCHEDULERS = Registry("SCHEDULERS")
EXPORTERS = Registry("EXPORTERS")
