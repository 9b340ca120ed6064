"""Unpickle what workers send back without trusting them: an allow-list of the types results are made of.

Why: a task's output file comes from a peer on the network. ``pickle.load`` would let that peer run
any code in the user's process (a ``__reduce__`` returning ``os.system``), password or not, since
a password only says the peer knew it. So results are read by ``ResultUnpickler``, whose
``find_class`` (the only door through which a pickle reaches code) hands out:

* named data types of the standard library: containers, numbers, ``datetime``, ``decimal``, the
  built-in exception classes (``ValueError``, ...: plain data whose constructor only stores its
  arguments), and the ``copyreg`` helpers that rebuild instances of allowed classes;
* numpy arrays, dtypes and scalars (not ``numpy.memmap``: it creates files) and the functions
  numpy's own pickles call to rebuild them; awkward's ``unpickle_*`` functions;
* classes, never functions, defined in awkward, hist, boost_histogram, coffea.processor,
  coffea.analysis_tools (Weights, PackedSelection, cutflows), in the user's own modules that the
  processor refers to (``user_modules``), and in the packages named by the executor option
  ``allowed_result_modules`` (``"module:name"`` there allows that one global);
* ``getattr(SomeEnum, "MEMBER")``, the way Python 3.12 pickles enum members, for allowed enums;
* the three helpers ``dill`` puts in pickles of plain values (``_load_type`` for built-in types,
  ``_create_array`` for numpy arrays, ``_eval_repr`` for ``range``), as checked stand-ins written
  here: dill is never imported, and its helpers for functions, code and classes are refused.

A class counts where it is defined (``cls.__module__``), so ``subprocess.Popen`` re-exported by
an allowed module is still refused; a module outside the list is never imported. See
docs/executor.md, "Security", for the threat model and what this does not cover.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import enum
import io
import pickle
import pickletools
import re
import site
import sys
import sysconfig
import types
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

SAFE_BUILTINS = frozenset({"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool",
                           "str", "bytes", "bytearray", "slice", "range"})
_NUMPY_REBUILDERS = ("core.multiarray:_reconstruct", "core.multiarray:scalar", "core.numeric:_frombuffer")
SAFE_GLOBALS = frozenset({
    "collections:OrderedDict", "collections:defaultdict", "collections:Counter", "collections:deque",
    "copyreg:_reconstructor", "copyreg:__newobj__", "copyreg:__newobj_ex__", "_codecs:encode",
    "datetime:datetime", "datetime:date", "datetime:time", "datetime:timedelta", "datetime:timezone",
    "decimal:Decimal", "fractions:Fraction",
    *(f"numpy.{path}" for path in _NUMPY_REBUILDERS), *(f"numpy._{path}" for path in _NUMPY_REBUILDERS),
    "numpy.ma.core:_mareconstruct",
    "awkward._pickle:unpickle_array_schema_1", "awkward._pickle:unpickle_array_schema_2",
    "awkward._pickle:unpickle_record_schema_1", "awkward._pickle:unpickle_record_schema_2",
})
# packages whose classes results are made of (numpy is handled apart: only array/dtype/scalar types)
CLASS_PACKAGES = ("awkward", "hist", "boost_histogram", "coffea.processor", "coffea.analysis_tools")
# never "user code", wherever they are installed
_LIBRARY_ROOTS = frozenset({"coffea_wq", "cloudpickle", "coffea", "numpy", "awkward", "awkward_cpp", "uproot",
                            "hist", "boost_histogram", "lz4", "envtools"})
_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
DILL_MODULES = ("dill._dill", "dill.dill")  # where dill's helpers live (dill.dill before dill 0.3)
_DILL_PLAIN_HELPERS = ("_load_type", "_create_array", "_eval_repr")
_RANGE_REPR = re.compile(r"range\((-?\d{1,30}), (-?\d{1,30})(?:, (-?\d{1,30}))?\)")


class RefusedResultError(pickle.UnpicklingError):
    """A result would build something that is not on the allow-list: ``module.name``."""

    def __init__(self, module: str, name: str, why: str = "not on the allow-list of result types"):
        self.module, self.name = module, name
        self.qualified = f"{module}.{name}"
        super().__init__(f"refused to build {self.qualified}: {why}")


@dataclass(frozen=True)
class ResultPolicy:
    """What a result may contain beyond the built-in allow-list.

    ``packages``: module names whose classes (theirs and their submodules') are allowed;
    ``modules``: modules whose own classes are allowed (not their submodules');
    ``globals``: exact ``"module:name"`` entries, any kind of object.

    Example:
        >>> policy = ResultPolicy.build(["mylib", "tools.helpers:make_thing"], user_modules=["my_processor"])
        >>> policy.allows_module("mylib.sub"), policy.allows_module("my_processor.sub")
        (True, False)
    """

    packages: frozenset[str] = frozenset(CLASS_PACKAGES)
    modules: frozenset[str] = frozenset()
    globals: frozenset[str] = frozenset()

    @classmethod
    def build(cls, allowed_result_modules: Iterable[str] = (), user_modules: Iterable[str] = ()) -> ResultPolicy:
        packages, exact = set(CLASS_PACKAGES), set()
        for entry in allowed_result_modules:
            (exact if ":" in entry else packages).add(entry)
        return cls(frozenset(packages), frozenset(user_modules), frozenset(exact))

    def allows_module(self, module: str) -> bool:
        if module in self.modules:
            return True
        return any(module == p or module.startswith(p + ".") for p in self.packages)


def load_result(stream: BinaryIO, policy: ResultPolicy) -> Any:
    """Unpickle one object from ``stream`` under ``policy``; raises ``RefusedResultError``.

    Example:
        >>> load_result(io.BytesIO(pickle.dumps({"n": [1, 2.5]})), ResultPolicy())
        {'n': [1, 2.5]}
    """
    return ResultUnpickler(stream, policy).load()


def loads_result(data: bytes, policy: ResultPolicy) -> Any:
    return load_result(io.BytesIO(data), policy)


class ResultUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` follows a ``ResultPolicy`` (see the module docstring)."""

    def __init__(self, stream: BinaryIO, policy: ResultPolicy):
        super().__init__(stream)
        self.policy = policy

    def find_class(self, module: str, name: str) -> Any:
        # protocol 0-2 pickles name Python 2's modules (__builtin__, copy_reg): judge the Python 3 ones
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "builtins":
            if name in SAFE_BUILTINS or is_builtin_exception(name):
                return getattr(builtins, name)
            if name == "getattr":
                return _enum_member
            raise RefusedResultError(module, name)
        key = f"{module}:{name}"
        if key in SAFE_GLOBALS or key in self.policy.globals:
            return super().find_class(module, name)
        if module in DILL_MODULES and name in _DILL_PLAIN_HELPERS:
            return _DILL_STAND_INS[name]
        if module == "numpy" or module.startswith("numpy."):
            return _numpy_type(module, name, super().find_class)
        if not self.policy.allows_module(module):
            raise RefusedResultError(module, name)  # before any import of it
        found = super().find_class(module, name)
        if not isinstance(found, type):
            raise RefusedResultError(module, name, "only classes are allowed from this module, not "
                                                   f"{type(found).__name__} objects")
        if not self.policy.allows_module(found.__module__):
            raise RefusedResultError(module, name, f"it is {found.__module__}.{found.__qualname__}, "
                                                   "which is not on the allow-list")
        return found


def is_builtin_exception(name: str) -> bool:
    """Whether ``builtins.<name>`` is an exception class (``ValueError``, ``KeyError``, ...).

    Example:
        >>> is_builtin_exception("ValueError"), is_builtin_exception("print")
        (True, False)
    """
    found = builtins.__dict__.get(name)
    return isinstance(found, type) and issubclass(found, BaseException)


# ---------------------------------------------------------------------------- dill's plain-value helpers
def _dill_load_type(name: Any) -> type:
    """dill's ``_load_type(name)``: only the built-in types a plain value needs, never FunctionType & co."""
    if isinstance(name, str) and (name in SAFE_BUILTINS or is_builtin_exception(name)):
        return getattr(builtins, name)
    if name == "NoneType":
        return type(None)
    raise RefusedResultError(DILL_MODULES[0], "_load_type", f"dill's type {name!r} is not on the allow-list")


def _dill_create_array(rebuild: Any, args: Any, state: Any, npdict: Any = None) -> Any:
    """dill's ``_create_array``: ``rebuild`` came through the allow-list; what it makes must be an array."""
    import numpy

    array = rebuild(*args)
    if not isinstance(array, numpy.ndarray) or isinstance(array, numpy.memmap):
        raise RefusedResultError(DILL_MODULES[0], "_create_array", f"it built a {type(array).__name__}, not an array")
    array.__setstate__(state)
    if npdict:
        raise RefusedResultError(DILL_MODULES[0], "_create_array", "an array subclass with attributes")
    return array


def _dill_eval_repr(text: Any) -> range:
    """dill's ``_eval_repr`` (it pickles ``range`` as its repr): parsed, never evaluated."""
    match = _RANGE_REPR.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise RefusedResultError(DILL_MODULES[0], "_eval_repr", f"{str(text)[:80]!r} is not a range")
    return range(*(int(g) for g in match.groups() if g is not None))


_DILL_STAND_INS = {"_load_type": _dill_load_type, "_create_array": _dill_create_array, "_eval_repr": _dill_eval_repr}


def _numpy_type(module: str, name: str, resolve) -> type:
    import numpy

    found = resolve(module, name)
    array_like = isinstance(found, type) and issubclass(found, (numpy.ndarray, numpy.dtype, numpy.generic))
    if not array_like or issubclass(found, numpy.memmap):
        raise RefusedResultError(module, name, "only numpy array, dtype and scalar types are allowed")
    return found


def _enum_member(owner: Any, name: str) -> Any:
    """``builtins.getattr`` as enum pickles use it: only a member of an (allowed) enum class."""
    if isinstance(owner, type) and issubclass(owner, enum.Enum) and isinstance(name, str) and name in owner.__members__:
        return owner[name]
    raise RefusedResultError("builtins", "getattr", f"getattr({owner!r}, {name!r}) is not an enum member lookup")


# ---------------------------------------------------------------------------- the user's modules
def user_modules_of(function: Any) -> frozenset[str]:
    """The user's own modules that ``function`` (coffea Runner's closure) refers to: the processor's
    class and what it holds, read from the processor's pickle without loading it.

    "Own" means imported in this process and neither in the standard library nor installed in
    site-packages (there the option ``allowed_result_modules`` names what to trust).

    Example:
        >>> user_modules_of(len)
        frozenset()
    """
    found: set[str] = set()
    _collect_modules(function, found, depth=0)
    return frozenset(m for m in found if _is_user_module(m))


def _collect_modules(obj: Any, found: set[str], depth: int) -> None:
    if depth > 8 or obj is None:
        return
    if isinstance(obj, partial):
        for part in (obj.func, *obj.args, *obj.keywords.values()):
            _collect_modules(part, found, depth + 1)
    elif isinstance(obj, (bytes, bytearray)):
        found.update(pickled_modules(bytes(obj)))
    elif isinstance(obj, (str, int, float, bool, tuple, list, dict, set, frozenset)):
        return
    elif isinstance(obj, types.MethodType):  # a bound method: its function and its instance's classes
        _collect_modules(obj.__func__, found, depth + 1)
        _collect_modules(obj.__self__, found, depth + 1)
    elif isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        found.add(getattr(obj, "__module__", None) or "")
    elif isinstance(obj, type):
        found.update(c.__module__ for c in obj.__mro__)
    else:  # the processor itself, when Runner sends it uncompressed
        found.update(c.__module__ for c in type(obj).__mro__)


def pickled_modules(data: bytes) -> set[str]:
    """Modules named by the globals of a pickle (lz4-framed or not), read opcode by opcode: nothing runs.

    Example:
        >>> sorted(pickled_modules(pickle.dumps(Path("x"))))
        ['pathlib']
    """
    if data[:4] == _LZ4_FRAME_MAGIC:
        try:
            import lz4.frame

            data = lz4.frame.decompress(data)
        except Exception:  # not ours to judge: it is simply not a processor
            return set()
    return {module for module, _ in pickled_globals(io.BytesIO(data))}


def pickled_globals(stream: BinaryIO) -> list[tuple[str, str]]:
    """The ``(module, name)`` of every global a pickle names, read opcode by opcode: nothing runs.

    A truncated or exotic pickle gives what was read before the problem.

    Example:
        >>> pickled_globals(io.BytesIO(pickle.dumps(Path)))
        [('pathlib', 'Path')]
    """
    found: list[tuple[str, str]] = []
    strings: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                strings.append(arg)
            elif opcode.name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif opcode.name in ("BINGET", "LONG_BINGET", "GET"):
                strings.append(memo.get(arg))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2 and all(isinstance(s, str) for s in strings[-2:]):
                found.append((strings[-2], strings[-1]))
            elif opcode.name == "GLOBAL" and isinstance(arg, str):
                module, _, name = arg.partition(" ")
                found.append((module, name))
    except Exception:  # a truncated or exotic pickle: keep what was read
        pass
    return found


def first_refused_global(stream: BinaryIO, policy: ResultPolicy) -> str | None:
    """``module.name`` of the first global of a pickle that ``load_result`` would surely refuse, or None.

    Judged on names alone, nothing imported: a subset of what the unpickler refuses (numpy types
    and classes of allowed modules pass here and are judged when loaded), so a pickle flagged
    here is refused there too. Used to read a small result at once instead of letting it wait.

    Example:
        >>> first_refused_global(io.BytesIO(pickle.dumps(print)), ResultPolicy())
        'builtins.print'
    """
    for module, name in pickled_globals(stream):
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "builtins":
            if name in SAFE_BUILTINS or name == "getattr" or is_builtin_exception(name):
                continue
            return f"{module}.{name}"
        key = f"{module}:{name}"
        if key in SAFE_GLOBALS or key in policy.globals or module == "numpy" or module.startswith("numpy."):
            continue
        if module in DILL_MODULES and name in _DILL_PLAIN_HELPERS:
            continue
        if not policy.allows_module(module):
            return f"{module}.{name}"
    return None


def _library_dirs() -> list[Path]:
    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(getattr(site, "getsitepackages", list)())
    return [Path(p).resolve() for p in paths if p]


def _is_user_module(name: str) -> bool:
    if not name or name == "builtins":
        return False
    root = name.partition(".")[0]
    if root in sys.stdlib_module_names or root in _LIBRARY_ROOTS:
        return False
    filename = getattr(sys.modules.get(name), "__file__", None)
    if not filename:  # not imported here (never import for this), or built in
        return False
    path = Path(filename).resolve()
    if "site-packages" in path.parts or "dist-packages" in path.parts:
        return False
    return not any(path.is_relative_to(d) for d in _library_dirs())
