"""Which processors may run, and the one way to turn a reference into one.

See docs/http-api.md and docs/security.md.

A job names its processor by import path (``package.module:function``) or
brings it cloudpickled. Either becomes a function only here, and only through
the rules: :meth:`ProcessorRules.grant` checks a reference against
``allowed_processors`` and ``allow_callables`` (and that, of this package's own
modules, only ``batch_widget.processors`` is named), and :meth:`Grant.load`
checks again, then imports or unpickles it, in whichever process runs it. The
server builds grants; worker processes get grants, never bare paths or pickles,
so what a worker loads passed the server's rules, and a processor that is handed
an import path (``worker.run_chunk`` takes one) cannot load it.

Kept free of the rest of the package but ``settings``: worker processes import it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

import cloudpickle

from batch_widget.engine.errors import ProcessorError, ProcessorRefused
from batch_widget.engine.settings import Settings

__all__ = ["Grant", "Processor", "ProcessorError", "ProcessorRefused", "ProcessorRules"]

Processor = Callable[..., Any]

#: ``package.module:function``: a dotted module, then ONE public name defined in it.
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z]\w*$")
#: This package, whose modules are the server's own machinery...
_OWN_PACKAGE = "batch_widget"
#: ...but for the one meant to be named (docs/security.md).
_OWN_PROCESSORS = "batch_widget.processors"


@dataclasses.dataclass(frozen=True)
class ProcessorRules:
    """``allowed_processors`` and ``allow_callables``: what a job may run.

    Picklable and small: every grant carries its rules to the worker that loads it.
    """

    allowed_processors: tuple[str, ...] = ("*",)
    allow_callables: bool = True

    @classmethod
    def of(cls, settings: Settings) -> ProcessorRules:
        """The rules of a server's settings."""
        return cls(tuple(settings.allowed_processors), settings.allow_callables)

    def grant(self, ref: str | bytes) -> Grant:
        """Check ``ref`` (an import path or a cloudpickle) and return it granted; else raise.

        An import path is imported here too (the module is allowed; a path that
        cannot run fails now, not in every worker). A pickle is NOT loaded: a
        process or Dask job's function is only ever unpickled where it runs.

        Raises
        ------
        ProcessorRefused
            If the rules refuse it.
        ProcessorError
            If the path is malformed or names nothing that may run.
        """
        self.check(ref)
        if isinstance(ref, str):
            _import(ref)
        return Grant(ref, self)

    def check(self, ref: str | bytes) -> None:
        """Raise unless the rules let ``ref`` run; loads nothing (see :meth:`grant`)."""
        if isinstance(ref, bytes):
            self.require_callables()
            return
        check_import_path(ref)
        _refuse_own_module(ref, ref.partition(":")[0])
        if not any(fnmatch.fnmatchcase(ref, p) for p in self.allowed_processors):
            raise ProcessorRefused(
                f"processor {ref!r} is not allowed: it matches none of "
                f"BatchWidgetApp.allowed_processors {list(self.allowed_processors)}"
            )

    def require_callables(self) -> None:
        """Raise ``ProcessorRefused`` unless pickled functions may run."""
        if not self.allow_callables:
            raise ProcessorRefused(
                "notebook-defined functions are disabled on this server "
                "(BatchWidgetApp.allow_callables is False); use an importable processor "
                "'package.module:function'"
            )


@dataclasses.dataclass(frozen=True)
class Grant:
    """A processor reference the rules allowed, as it travels to the process that runs it.

    Build one with :meth:`ProcessorRules.grant`. :meth:`load` checks the rules it
    carries again and loads the function in the calling process.
    """

    ref: str | bytes
    rules: ProcessorRules

    @property
    def pickled(self) -> bool:
        """True for a cloudpickled function, False for an import path."""
        return isinstance(self.ref, bytes)

    def load(self) -> Processor:
        """The function: checked against the rules again, then imported or unpickled here."""
        self.rules.check(self.ref)
        if isinstance(self.ref, str):
            return _import(self.ref)
        return _unpickle(self.ref)


def check_import_path(path: str) -> None:
    """Raise ``ProcessorError`` unless ``path`` reads ``package.module:function``."""
    if not _IMPORT_PATH.fullmatch(path):
        raise ProcessorError(
            f"processor {path!r} is not an import path of the form 'package.module:function' "
            "(one public name after the colon: no dots, no leading underscore)"
        )


def _refuse_own_module(path: str, module_name: str) -> None:
    """Refuse a module of this package other than ``batch_widget.processors``.

    The others are the server's machinery: ``worker.run_chunk`` runs any import
    path it is given, the kernel's functions talk to servers. Named as processors
    they would run what ``allowed_processors`` is there to refuse, so no pattern
    allows them.
    """
    own = module_name == _OWN_PACKAGE or module_name.startswith(_OWN_PACKAGE + ".")
    if own and module_name != _OWN_PROCESSORS:
        raise ProcessorRefused(
            f"processor {path!r} is refused: of batch_widget's own modules only "
            f"{_OWN_PROCESSORS} may be named, whatever BatchWidgetApp.allowed_processors "
            f"says (the others are the server's own machinery). Name a function of "
            f"{_OWN_PROCESSORS} or of your own module"
        )


def _import(path: str) -> Processor:
    """Import the function an import path names, if the module itself offers it.

    Only what the module offers may run, so that ``allowed_processors`` (patterns
    over these paths) means what it says: a function *defined* in the module, or
    a callable that is not a class the module deliberately exports in its
    ``__all__``. A name the module merely imported (``os``, ``system``,
    ``partial(...)``), a class (its constructor would run on each item), or
    anything reached through attributes is refused, and so is a function of
    this package's machinery that another module re-exports.
    """
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        func: Any = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ProcessorError(f"processor {path!r} cannot be imported: {exc}") from exc
    if inspect.isclass(func):
        raise ProcessorError(
            f"processor {path!r} is a class, not a function: a processor is "
            "called as f(item, **params) for its result; name a function"
        )
    if not _offered_by(module, attr, func):
        raise ProcessorError(
            f"processor {path!r} is not a function defined in {module_name} nor listed in its "
            "__all__; name the module that defines it"
        )
    _refuse_own_module(path, str(getattr(func, "__module__", None) or module_name))
    return checked(func, repr(path))


def _offered_by(module: Any, name: str, obj: Any) -> bool:
    """True if ``module`` defines function ``obj``, or exports ``name`` in its ``__all__``."""
    exported = getattr(module, "__all__", None)
    if isinstance(exported, (list, tuple)) and name in exported:
        return True
    is_function = inspect.isfunction(obj) or inspect.isbuiltin(obj)
    return is_function and getattr(obj, "__module__", None) == module.__name__


def _unpickle(pickled: bytes) -> Processor:
    """Load a cloudpickled function. Never cached: it may carry megabytes of captured data."""
    try:
        func = cloudpickle.loads(pickled)
    except Exception as exc:
        raise ProcessorError(f"the pickled function cannot be loaded: {exc}") from exc
    return checked(func, "the pickled function")


def checked(func: Any, label: str) -> Processor:
    """``func`` if it is callable; ``ProcessorError`` naming ``label`` if not."""
    if not callable(func):
        raise ProcessorError(f"processor {label} is not callable")
    return func  # type: ignore[no-any-return]  # checked callable just above
