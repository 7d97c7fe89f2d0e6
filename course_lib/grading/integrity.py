"""Is an answer the student's own? A static check that a function does not delegate.

Assignments ask for NumPy written from scratch. ``course_lib`` holds the reference
implementations and torch/scipy/scikit-learn have most of the functions too, so an answer could
pass every value test by calling them. Hidden test cells therefore call::

    from course_lib.grading.integrity import assert_from_scratch
    assert_from_scratch(sigmoid)

``from_scratch_problems(fn)`` walks everything ``fn`` can reach without running it:

- its bytecode, including nested functions, lambdas and comprehensions (code objects among the
  constants): ``import`` statements, the global names it loads, string constants that name a
  forbidden module (``importlib.import_module("torch")``, ``sys.modules["torch"]``), and the
  dynamic escapes ``eval``/``exec``/``__import__``/``globals``/``import_module``;
- the objects those global names resolve to, its closure cells, default arguments,
  ``functools.partial``/``__wrapped__``/bound-method targets and the items of containers;
- recursively, every function and class defined by the student (``__module__ == "__main__"`` in a
  notebook, or the module of ``fn`` itself), so a helper that delegates is found too.

A referenced object is forbidden when the module it comes from (a module's ``__name__``, a
function's or class's ``__module__``, an instance's type) is one of ``forbidden`` or inside it.
NumPy ufuncs all claim ``numpy``, so one that is not NumPy's own is looked up by identity in the
loaded forbidden modules (``scipy.special.expit`` is a ufunc).

The check is static and conservative: it cannot follow attributes stored on allowed modules at
run time, and it is not a sandbox. It catches the plausible shortcuts, and says which one.
"""

from __future__ import annotations

import dis
import functools
import re
import sys
import types
from collections.abc import Iterable
from typing import Any

#: Packages whose code an answer written "from scratch in NumPy" must not call.
FORBIDDEN = ("course_lib", "torch", "scipy", "sklearn", "tensorflow", "jax")

#: Names that run or fetch code the static walk cannot see; an answer never needs them.
DYNAMIC_NAMES = frozenset(
    {"__import__", "import_module", "exec", "eval", "globals", "__builtins__", "__globals__", "modules"}
)

_MAX_ITEMS = 1000  # items of one container that are looked at
_MAX_DEPTH = 4  # containers inside containers


class FromScratchError(AssertionError):
    """An answer delegates to code it was asked to write; the message says where."""


def from_scratch_problems(
    fn: Any,
    forbidden: Iterable[str] = FORBIDDEN,
    *,
    user_modules: Iterable[str] = (),
    name: str | None = None,
) -> list[str]:
    """Every way ``fn`` reaches a forbidden package, as readable lines (empty: it is clean).

    ``user_modules`` are modules whose functions and classes are followed (the student's code);
    ``"__main__"`` and ``fn``'s own module always are.
    """
    forbidden = tuple(forbidden)
    label = name or _label(fn)
    user = {"__main__", *user_modules}
    module = getattr(fn, "__module__", None)
    if isinstance(module, str) and not _matches(module, forbidden):
        user.add(module)
    walker = _Walker(forbidden, frozenset(user))
    walker.visit(fn, label, depth=0)
    return walker.problems


def assert_from_scratch(
    fn: Any,
    forbidden: Iterable[str] = FORBIDDEN,
    *,
    user_modules: Iterable[str] = (),
    name: str | None = None,
) -> None:
    """Raise ``FromScratchError`` (an AssertionError) if ``fn`` delegates to ``forbidden``."""
    forbidden = tuple(forbidden)
    problems = from_scratch_problems(fn, forbidden, user_modules=user_modules, name=name)
    if problems:
        label = name or _label(fn)
        lines = "\n".join(f"  - {p}" for p in dict.fromkeys(problems))
        raise FromScratchError(
            f"{label} must be your own NumPy code, but it delegates:\n{lines}\n"
            f"Answers that call {', '.join(forbidden)} get no credit for this part: "
            "write the formula with NumPy operations (np.exp, np.where, @, ...)."
        )


# --------------------------------------------------------------------------------------------


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _label(obj: Any) -> str:
    for attr in ("__qualname__", "__name__"):
        value = getattr(obj, attr, None)
        if isinstance(value, str):
            return value
    return type(obj).__name__


def _origin(obj: Any) -> str | None:
    """The module ``obj`` comes from, or None when that cannot be told."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    objclass = getattr(obj, "__objclass__", None)  # method descriptors: torch.Tensor.sigmoid
    if isinstance(objclass, type):
        return objclass.__module__
    try:
        module = getattr(obj, "__module__", None)
    except Exception:  # exotic objects whose attribute access fails
        module = None
    if isinstance(module, str):
        return module
    owner = getattr(obj, "__self__", None)  # builtin methods of a module or class
    if isinstance(owner, types.ModuleType):
        return owner.__name__
    if isinstance(owner, type):
        return owner.__module__
    return type(obj).__module__


class _Walker:
    def __init__(self, forbidden: tuple[str, ...], user: frozenset[str]) -> None:
        self.forbidden = forbidden
        self.user = user
        self.problems: list[str] = []
        self._seen: dict[int, Any] = {}  # id -> object, kept alive so ids stay unique
        names = "|".join(re.escape(p) for p in forbidden)
        self._const_re = re.compile(rf"(?:{names})(?:\.[A-Za-z_]\w*)*")

    # objects -----------------------------------------------------------------------------

    def visit(self, obj: Any, where: str, depth: int) -> None:
        if id(obj) in self._seen or obj is None or isinstance(obj, (str, bytes, int, float)):
            return
        self._seen[id(obj)] = obj

        origin = _origin(obj)
        if type(obj).__name__ == "ufunc":
            origin = self._ufunc_origin(obj) or origin
        if origin is not None and _matches(origin, self.forbidden):
            self.problems.append(f"{where} uses {self._describe(obj, origin)}")
            return

        if isinstance(obj, types.FunctionType):
            if obj.__module__ in self.user:
                self._visit_function(obj, where, depth)
        elif isinstance(obj, types.MethodType):
            self.visit(obj.__func__, where, depth)
            self.visit(obj.__self__, where, depth)
        elif isinstance(obj, functools.partial):
            self.visit(obj.func, where, depth)
            for item in (*obj.args, *obj.keywords.values()):
                self.visit(item, where, depth + 1)
        elif isinstance(obj, (staticmethod, classmethod)):
            self.visit(obj.__func__, where, depth)
        elif isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                self.visit(f, where, depth)
        elif isinstance(obj, type):
            if obj.__module__ in self.user:
                for attr, value in list(vars(obj).items())[:_MAX_ITEMS]:
                    self.visit(value, f"{where}.{attr}", depth)
                for base in obj.__bases__:
                    self.visit(base, where, depth)
        elif isinstance(obj, (dict, types.MappingProxyType)):
            if depth < _MAX_DEPTH:
                for key, value in list(obj.items())[:_MAX_ITEMS]:
                    self.visit(value, f"{where}[{key!r}]", depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            if depth < _MAX_DEPTH:
                for item in list(obj)[:_MAX_ITEMS]:
                    self.visit(item, where, depth + 1)
        elif type(obj).__module__ in self.user:  # an instance of a student's class
            self.visit(type(obj), where, depth)
            if depth < _MAX_DEPTH:
                self.visit(getattr(obj, "__dict__", None), where, depth + 1)
        wrapped = getattr(obj, "__wrapped__", None) if callable(obj) else None
        if wrapped is not None:
            self.visit(wrapped, where, depth)

    def _visit_function(self, fn: types.FunctionType, where: str, depth: int) -> None:
        self._visit_code(fn.__code__, fn.__globals__, where, depth)
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.visit(value, f"{where} (closure)", depth + 1)
        for default in (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()):
            self.visit(default, f"{where} (default argument)", depth + 1)

    # bytecode ------------------------------------------------------------------------------

    def _visit_code(self, code: types.CodeType, globs: dict, where: str, depth: int) -> None:
        for ins in dis.get_instructions(code):
            arg = ins.argval
            if ins.opname == "IMPORT_NAME":
                if isinstance(arg, str) and arg and _matches(arg, self.forbidden):
                    self.problems.append(f"{where} imports {arg}")
            elif ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                if not isinstance(arg, str):
                    continue
                if arg in globs:
                    self.visit(globs[arg], f"{where} -> {arg}", depth)
                elif arg in DYNAMIC_NAMES:
                    self.problems.append(f"{where} calls {arg}(), which hides what it runs")
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM"):
                if arg in DYNAMIC_NAMES:
                    self.problems.append(f"{where} uses .{arg}, which hides what it runs")
            elif ins.opname in ("LOAD_CONST", "RETURN_CONST"):
                for s in _strings(arg):
                    if self._const_re.fullmatch(s):
                        self.problems.append(f"{where} names the module {s!r}")
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self._visit_code(const, globs, where, depth)

    # helpers -------------------------------------------------------------------------------

    def _ufunc_origin(self, ufunc: Any) -> str | None:
        """NumPy's ufuncs all say ``numpy``; find the forbidden module that holds this one."""
        numpy = sys.modules.get("numpy")
        if numpy is not None and getattr(numpy, getattr(ufunc, "__name__", ""), None) is ufunc:
            return "numpy"
        for modname, module in list(sys.modules.items()):
            if module is None or not _matches(modname, self.forbidden):
                continue
            try:
                values = list(vars(module).values())
            except TypeError:
                continue
            if any(v is ufunc for v in values):
                return modname
        return None

    @staticmethod
    def _describe(obj: Any, origin: str) -> str:
        if isinstance(obj, types.ModuleType):
            return f"the module {origin}"
        return f"{_label(obj)} from {origin}"


def _strings(const: Any) -> list[str]:
    if isinstance(const, str):
        return [const]
    if isinstance(const, (tuple, frozenset)):
        return [s for item in const for s in _strings(item)]
    return []


__all__ = [
    "DYNAMIC_NAMES",
    "FORBIDDEN",
    "FromScratchError",
    "assert_from_scratch",
    "from_scratch_problems",
]
