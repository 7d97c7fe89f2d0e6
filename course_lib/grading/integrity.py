"""Is an answer the student's own? A static check, on the trusted side, of the submitted source.

Assignments ask for NumPy written from scratch. ``course_lib`` holds the reference implementations
and torch/scipy/scikit-learn have most of the functions too. During grading the first defence is
by construction: the student's kernel cannot import them (``kernel_env.py``). This module is the
second line, and the one that explains: the judge (``judge.py``) runs it on the notebook as
submitted, in its own process, before it asks the kernel anything, so nothing the student's code
does at run time can switch it off.

``delegation_problems(sources, names)`` parses every code cell (IPython magics and shell lines are
skipped), records what each module-level name is bound to (imports, ``def``, ``class``,
assignments, attributes stored on a name such as ``np.sig = torch.sigmoid``, ``setattr``), and
walks, from each of ``names``, everything the code can reach:

- ``import`` statements anywhere in it, and names bound to imports of a forbidden package
  (``FORBIDDEN``: ``course_lib``, torch, scipy, scikit-learn, TensorFlow, JAX), at any depth of
  helpers, classes, default arguments, lambdas and assigned expressions;
- string constants that name a forbidden module (``importlib.import_module("torch")``);
- modules that run code the walk cannot see (``DYNAMIC_MODULES``: importlib, pickle, ctypes, gc,
  inspect, types, subprocess, ...): an answer never needs them;
- the dynamic escapes that hide what runs (``eval``, ``exec``, ``compile``, ``__import__``,
  ``globals()``, ``vars()``, ``getattr``/``setattr`` on modules, ``sys.modules``, and dunder
  attributes such as ``__dict__``, ``__globals__``, ``__builtins__``);
- with a star import from a forbidden module, every name the code uses that nothing else binds.

Each problem is a sentence naming the answer, the path to the culprit and the cell it is in. The
check cannot be fooled at run time because it never runs the code; it is conservative (a name
bound in two places is followed to both) and it does not judge values: the judge does that.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Packages whose code an answer written "from scratch in NumPy" must not call.
FORBIDDEN = ("course_lib", "torch", "scipy", "sklearn", "tensorflow", "jax")

#: Calls that run or fetch code the static walk cannot see; an answer never needs them.
DYNAMIC_CALLS = frozenset(
    {"eval", "exec", "compile", "__import__", "globals", "vars", "locals", "import_module", "getattr",
     "setattr", "delattr", "breakpoint"}
)  # fmt: skip
#: Attributes that reach code or state by the back door.
DYNAMIC_ATTRIBUTES = frozenset(
    {"modules", "__dict__", "__globals__", "__builtins__", "__code__", "__closure__", "__subclasses__",
     "__getattribute__", "__import__", "__loader__", "__spec__", "f_globals", "f_locals", "f_back",
     "gi_frame", "tb_frame", "func_globals", "import_module", "get_objects", "get_referrers",
     "get_referents", "_getframe"}
)  # fmt: skip
#: Modules that can run or reach code the walk cannot see; an answer never needs them.
DYNAMIC_MODULES = (
    "importlib", "pickle", "marshal", "ctypes", "gc", "inspect", "builtins", "code", "codeop", "types",
    "runpy", "pkgutil", "zipimport", "subprocess", "multiprocessing", "dill", "cloudpickle", "shelve",
    "copyreg", "imp",
)  # fmt: skip
_BUILTINS = frozenset(dir(builtins))


class FromScratchError(AssertionError):
    """An answer delegates to code it was asked to write; the message says where."""


@dataclass
class _Binding:
    """What a module-level name is bound to: an import of ``module`` or a node of code."""

    cell: int
    module: str | None = None  # "torch", "course_lib.numpy_impl.activations.sigmoid", ...
    node: ast.AST | None = None


@dataclass
class _Notebook:
    bindings: dict[str, list[_Binding]] = field(default_factory=dict)
    star_imports: list[tuple[int, str]] = field(default_factory=list)

    def bind(self, name: str, binding: _Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _clean(source: str) -> str:
    """Cell source without IPython magics and shell escapes (they cannot be parsed)."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines.append(line[: len(line) - len(stripped)] + "pass")
        else:
            lines.append(line)
    return "\n".join(lines)


def _parse(sources: Sequence[str]) -> tuple[list[ast.Module | None], _Notebook]:
    trees: list[ast.Module | None] = []
    book = _Notebook()
    for index, source in enumerate(sources):
        try:
            tree = ast.parse(_clean(source))
        except SyntaxError:
            trees.append(None)  # a cell that does not parse defines nothing when it runs
            continue
        trees.append(tree)
        for stmt in _module_level(tree.body):
            _bind_statement(book, stmt, index)
        for node in ast.walk(tree):  # setattr(np, "sig", value) anywhere
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "setattr"
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
            ):
                attr = node.args[1]
                known = isinstance(attr, ast.Constant) and isinstance(attr.value, str)
                name = f"{node.args[0].id}.{attr.value}" if known else node.args[0].id
                book.bind(name, _Binding(index, node=node))
    return trees, book


def _module_level(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Module-level statements, including those inside if/try/with/for blocks."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
            yield from _module_level(stmt.body)
            yield from _module_level(getattr(stmt, "orelse", []))
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            yield from _module_level(stmt.body)
            for handler in stmt.handlers:
                yield from _module_level(handler.body)
            yield from _module_level(stmt.orelse)
            yield from _module_level(stmt.finalbody)


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str | None:
    """``np.random.step`` for an attribute chain on a name, else None (a subscript breaks it)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _target_name(target: ast.AST) -> str | None:
    """The name an assignment target binds: ``x``, ``np.sig`` for ``np.sig = ...`` (an attribute
    stored on a name), or the container's name for ``table["k"] = ...``."""
    if isinstance(target, ast.Attribute):
        return _dotted(target) or _root_name(target)
    return _root_name(target)


def _targets(target: ast.AST) -> Iterable[ast.AST]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for t in target.elts:
            yield from _targets(t)
    elif isinstance(target, ast.Starred):
        yield from _targets(target.value)
    else:
        yield target


def _bind_statement(book: _Notebook, stmt: ast.stmt, cell: int) -> None:
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            if alias.asname:
                book.bind(alias.asname, _Binding(cell, module=alias.name))
            else:
                top = alias.name.split(".")[0]
                book.bind(top, _Binding(cell, module=alias.name if "." not in alias.name else top))
                if "." in alias.name:  # import a.b binds a, and makes a.b reachable through it
                    book.bind(top, _Binding(cell, module=alias.name))
    elif isinstance(stmt, ast.ImportFrom):
        module = ("." * stmt.level) + (stmt.module or "")
        for alias in stmt.names:
            if alias.name == "*":
                book.star_imports.append((cell, module))
            else:
                book.bind(alias.asname or alias.name, _Binding(cell, module=f"{module}.{alias.name}"))
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        book.bind(stmt.name, _Binding(cell, node=stmt))
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        value = stmt.value
        for target in targets:
            for t in _targets(target):
                name = _target_name(t)
                if name is not None and value is not None:
                    book.bind(name, _Binding(cell, node=value))
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        for t in _targets(stmt.target):
            name = _root_name(t)
            if name is not None:
                book.bind(name, _Binding(cell, node=stmt.iter))
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        for item in stmt.items:
            if item.optional_vars is not None:
                for t in _targets(item.optional_vars):
                    name = _root_name(t)
                    if name is not None:
                        book.bind(name, _Binding(cell, node=item.context_expr))
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.NamedExpr):
        book.bind(stmt.value.target.id, _Binding(cell, node=stmt.value.value))


def _local_names(fn: ast.AST) -> set[str]:
    """Names a function (or lambda, or class body) binds itself: its parameters and assignments."""
    names: set[str] = set()
    args = getattr(fn, "args", None)
    if isinstance(args, ast.arguments):
        for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if a is not None:
                names.add(a.arg)
    declared_global: set[str] = set()
    for node in ast.walk(fn):
        if node is fn:
            continue
        if isinstance(node, ast.Global):
            declared_global.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names - declared_global


def _own_name(node: ast.AST) -> str | None:
    return getattr(node, "name", None) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


class _Walker:
    def __init__(
        self, book: _Notebook, forbidden: tuple[str, ...], trusted: frozenset[int], labels: Sequence[str]
    ) -> None:
        self.book, self.forbidden, self.trusted, self.labels = book, forbidden, trusted, labels
        self.problems: list[str] = []
        self.seen: set[int] = set()
        self.ignore: frozenset[str] = frozenset()
        names = "|".join(re.escape(p) for p in forbidden)
        self.module_re = re.compile(rf"(?:{names})(?:\.[A-Za-z_]\w*)*")

    def where(self, cell: int) -> str:
        return self.labels[cell] if cell < len(self.labels) else f"code cell {cell + 1}"

    def report(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def name(self, name: str, path: str | None = None) -> None:
        """Follow ``name`` (reached from ``path``; None: a name the check starts from)."""
        if path is not None and name in self.ignore:
            return
        path = name if path is None else f"{path} -> {name}"
        bindings = self.book.bindings.get(name)
        if not bindings:
            if name not in _BUILTINS and self.book.star_imports:
                for cell, module in self.book.star_imports:
                    if _matches(module.lstrip("."), self.forbidden):
                        origin = f"`from {module} import *` ({self.where(cell)})"
                        self.report(f"{path}, which only {origin} defines")
            return
        for b in bindings:
            if b.module is not None:
                if _matches(b.module.lstrip("."), self.forbidden):
                    self.report(f"{path} is {b.module}, imported in {self.where(b.cell)}")
                elif _matches(b.module, DYNAMIC_MODULES):
                    where = self.where(b.cell)
                    self.report(f"{path} is {b.module} ({where}), which can run code the check cannot see")
            elif b.node is not None and b.cell not in self.trusted:
                self.node(b.node, path, b.cell)

    def node(self, node: ast.AST, path: str, cell: int) -> None:
        if id(node) in self.seen:
            return
        self.seen.add(id(node))
        local = (
            _local_names(node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            else set()
        )
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                for alias in sub.names:
                    if _matches(alias.name, (*self.forbidden, *DYNAMIC_MODULES)):
                        self.report(f"{path} imports {alias.name} ({self.where(cell)})")
            elif isinstance(sub, ast.ImportFrom):
                module = sub.module or ""
                if sub.level == 0 and _matches(module, (*self.forbidden, *DYNAMIC_MODULES)):
                    self.report(f"{path} imports from {module} ({self.where(cell)})")
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                if sub.id in DYNAMIC_CALLS or sub.id in DYNAMIC_ATTRIBUTES:
                    if sub.id not in local:
                        self.report(f"{path} uses {sub.id}, which hides what it runs ({self.where(cell)})")
                        continue
                if sub.id not in local and sub.id != _own_name(node):
                    self.name(sub.id, path)
            elif isinstance(sub, ast.Attribute) and sub.attr in DYNAMIC_ATTRIBUTES:
                self.report(f"{path} uses .{sub.attr}, which hides what it runs ({self.where(cell)})")
            elif isinstance(sub, ast.Attribute):
                dotted = _dotted(sub)  # np.step: follow what the notebook stored there, if anything
                if dotted and dotted.split(".")[0] not in local and dotted in self.book.bindings:
                    self.name(dotted, path)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                if self.module_re.fullmatch(sub.value):
                    self.report(f"{path} names the module {sub.value!r} ({self.where(cell)})")


def delegation_problems(
    sources: Sequence[str],
    names: Iterable[str],
    forbidden: Iterable[str] = FORBIDDEN,
    trusted: Iterable[int] = (),
    labels: Sequence[str] = (),
    ignore: Iterable[str] = (),
) -> list[str]:
    """How each of ``names`` (functions or variables of the notebook whose code cells are
    ``sources``, in order) reaches a ``forbidden`` package; empty when it does not.

    ``trusted``: indices (into ``sources``) of the instructor's locked cells. The functions and
    values they define are not walked (they may use the library); a name they bind to a forbidden
    import is still one, and a student's cell that rebinds a name is walked as usual. ``labels``
    name the cells in the messages ("cell sigmoid"; default "code cell 3"). ``ignore``: names the
    walk does not follow from ``names`` (functions the judge swaps for its own while it grades the
    part, so that a mistake in one part does not cost another)."""
    forbidden = tuple(forbidden)
    _, book = _parse(sources)
    walker = _Walker(book, forbidden, frozenset(trusted), list(labels))
    walker.ignore = frozenset(ignore)
    for name in names:
        walker.name(name)
    return walker.problems


def assert_from_scratch(
    sources: Sequence[str],
    names: Iterable[str],
    forbidden: Iterable[str] = FORBIDDEN,
    trusted: Iterable[int] = (),
) -> None:
    """Raise ``FromScratchError`` (an AssertionError) when one of ``names`` delegates."""
    names = list(names)
    problems = delegation_problems(sources, names, forbidden, trusted)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise FromScratchError(
            f"{', '.join(names)} must be your own NumPy code, but it delegates:\n{lines}\n"
            f"Answers that call {', '.join(tuple(forbidden))} get no credit for this part: write the "
            "formula with NumPy operations (np.exp, np.where, @, ...)."
        )


__all__ = [
    "DYNAMIC_ATTRIBUTES",
    "DYNAMIC_CALLS",
    "FORBIDDEN",
    "FromScratchError",
    "assert_from_scratch",
    "delegation_problems",
]
