"""Network and optimizer factories as plain ``{"class_path": ..., "init_args": {...}}`` dicts, and back.

A model built in Python receives callables (``functools.partial(DCGANGenerator, base_channels=32)``, an
optimizer class). Kept as-is in the hyperparameters they would be pickled into every checkpoint, which
``torch.load``'s default ``weights_only=True`` refuses to read. :func:`to_class_config` records them in the form
the CLI writes; :func:`from_class_config` rebuilds the factory when ``load_from_checkpoint`` passes it back.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

#: What a factory argument may hold: a callable, its recorded dict, or ``None`` (the default).
FactoryOrConfig = Callable[..., Any] | Mapping[str, Any] | None


def _import_path(obj: Any) -> str | None:
    """``module.QualName`` of a class or function that can be imported back by that name, else ``None``."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None
    try:
        return f"{module}.{qualname}" if _resolve(f"{module}.{qualname}", need_imported=True) is obj else None
    except ValueError:
        return None


def _plain(value: Any) -> bool:
    """Whether ``value`` survives ``torch.load(weights_only=True)`` and YAML: numbers, strings, lists, dicts."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _unwrap_jsonargparse(factory: functools.partial) -> functools.partial:
    """jsonargparse builds ``Callable`` arguments as ``partial(<its helper>, <instantiator>, cls, **kwargs)``
    (e.g. under ``load_from_checkpoint`` of a CLI checkpoint): the same thing as ``partial(cls, **kwargs)``."""
    func_module = getattr(factory.func, "__module__", "") or ""
    if func_module.startswith("jsonargparse") and factory.args and isinstance(factory.args[-1], type):
        return functools.partial(factory.args[-1], **factory.keywords)
    return factory


def to_class_config(factory: FactoryOrConfig) -> Any:
    """The recordable form of ``factory``: ``None``, a class-config dict, or (when neither fits) a short string.

    A class or importable function becomes ``{"class_path": ...}``; ``functools.partial(cls, **kwargs)`` with
    plain keyword values adds ``"init_args": kwargs`` (tuples become lists). Anything else (a lambda, a
    partial with positional arguments) is recorded as a string naming it, which :func:`from_class_config`
    refuses with a message saying to pass the argument again.
    """
    if factory is None or isinstance(factory, Mapping):
        return None if factory is None else dict(factory)
    target, kwargs = factory, {}
    if isinstance(factory, functools.partial):
        factory = _unwrap_jsonargparse(factory)
        if factory.args:
            return f"<not recordable: {factory!r}>"
        target, kwargs = factory.func, dict(factory.keywords)
    path = _import_path(target)
    if path is None or not _plain(kwargs):
        return f"<not recordable: {factory!r}>"
    config: dict[str, Any] = {"class_path": path}
    if kwargs:
        config["init_args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    return config


def _resolve(class_path: str, need_imported: bool) -> Any:
    # Walk down from the longest importable module prefix (handles nested qualnames such as Outer.Inner).
    parts = class_path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        if need_imported and module_name not in sys.modules:
            continue
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            continue
        return obj
    raise ValueError(f"class_path {class_path!r} does not name an imported class: import its module before "
                     "loading, or pass the argument explicitly")


def from_class_config(value: FactoryOrConfig, name: str) -> Callable[..., Any] | None:
    """Turn a recorded class config back into a factory; callables and ``None`` pass through unchanged.

    Only classes and functions of modules that are already imported are accepted (as Lightning's own
    ``load_from_checkpoint`` does for module classes), so a checkpoint cannot make Python import arbitrary code.

    Args:
        value: a callable, ``None``, or a dict with ``class_path`` and optional ``init_args``.
        name: the argument's name, for messages (e.g. ``"generator"``).

    Raises:
        ValueError: an unrecordable factory's placeholder string, a dict without ``class_path``, or a
            ``class_path`` whose module is not imported.
    """
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        where = (" Its class was defined in the script that ran (__main__), which another process cannot import: "
                 "define it in a module of its own and import it from there." if "__main__." in value else "")
        raise ValueError(f"{name} was recorded as {value}, which cannot be rebuilt: pass {name}=... again "
                         f"(e.g. ConditionalGAN.load_from_checkpoint(path, {name}=...)), or build it from a class "
                         "of an importable module with keyword arguments (functools.partial(cls, **kwargs)) so that "
                         f"it is recorded.{where}")
    if not isinstance(value, Mapping) or not isinstance(value.get("class_path"), str):
        raise ValueError(f"{name} must be a callable or a dict with 'class_path' (and optional 'init_args'), "
                         f"got {value!r}")
    target = _resolve(value["class_path"], need_imported=True)
    if not callable(target):
        raise ValueError(f"{name}: class_path {value['class_path']!r} is not a class or function")
    init_args = dict(value.get("init_args") or {})
    return functools.partial(target, **init_args) if init_args else target


__all__ = ["FactoryOrConfig", "from_class_config", "to_class_config"]
