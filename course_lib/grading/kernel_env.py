"""What a grading kernel can import: the student's packages, and a grading copy of ``course_lib``.

An answer must not delegate to torch, scipy, scikit-learn or the ``course_lib`` functions the
assignment asks for. The judge's static check (``integrity.py``) is one defence; this module is
the other, by construction: ``build(dest, forbidden)`` makes, once per class,

- ``dest/site/``: one entry (a symbolic link) per top-level file or folder of the distributions a
  kernel needs, ``KERNEL_ROOTS`` (ipykernel, NumPy, Matplotlib, tqdm) and everything they require,
  as ``importlib.metadata`` lists them in this environment; never a distribution of
  ``FORBIDDEN_DISTRIBUTIONS`` (torch, scipy, scikit-learn, pandas, ...), even if one were required;
- ``dest/lib/course_lib/``: a copy of the library without ``grading`` and ``torch_impl``, without
  the modules in ``forbidden`` (the judge's list: what the assignment asks students to write), and
  without every module that imports, at its top level, something no longer there (so
  ``numpy_impl.mlp`` goes when ``numpy_impl.activations`` does). ``MISSING.txt`` in it says what
  was left out and why.

The kernel runs ``python -S`` (no site-packages at all) with ``PYTHONPATH`` = site, lib. In the
``chroot`` sandbox each entry of ``site`` is bind-mounted on its own and nothing else of the
Python environment is there, so the rest cannot be imported by any trick; in the weaker sandboxes
the files exist, and only the path and the static check stand in the way (the instructors' guide
says so).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import re
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: The distributions a grading kernel needs; their requirements come with them.
KERNEL_ROOTS = ("ipykernel", "numpy", "matplotlib", "tqdm")
#: Never importable by a kernel, whatever requires them.
FORBIDDEN_DISTRIBUTIONS = ("torch", "scipy", "scikit-learn", "pandas", "tensorflow", "jax", "jaxlib",
                           "optuna", "nbgrader", "jupyter-server", "notebook", "jupyterlab")  # fmt: skip
#: Parts of course_lib no kernel gets.
ALWAYS_REMOVED = ("course_lib.grading", "course_lib.torch_impl")


@dataclass
class KernelEnv:
    """The folders a kernel's PYTHONPATH names, and what the grading copy lacks."""

    site: Path
    lib: Path
    distributions: list[str] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)  # course_lib module -> why it is missing

    @property
    def pythonpath(self) -> str:
        return os.pathsep.join([str(self.site), str(self.lib)])


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_distributions(roots: Iterable[str] = KERNEL_ROOTS) -> list[str]:
    """The installed distributions ``roots`` need (requirements followed, extras not), sorted."""
    from packaging.requirements import Requirement

    forbidden = {_normalize(d) for d in FORBIDDEN_DISTRIBUTIONS}
    seen: dict[str, md.Distribution] = {}
    todo = [_normalize(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in forbidden:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # an optional dependency that is not installed
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(_normalize(req.name))
    return sorted(seen)


def site_entries(distributions: Iterable[str]) -> dict[str, Path]:
    """{top-level name in site-packages: its path} of every file the distributions installed."""
    entries: dict[str, Path] = {}
    for name in distributions:
        dist = md.distribution(name)
        for file in dist.files or []:
            parts = Path(file).parts
            if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
                continue
            top = parts[0]
            if top.endswith(".dist-info") and _normalize(top.split("-")[0]) != _normalize(name):
                continue
            path = Path(dist.locate_file(top))
            if path.exists():
                entries.setdefault(top, path)
    return entries


def _top_imports(path: Path) -> set[str]:
    """Module names a file imports at its top level (not inside functions)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            continue  # guarded imports (optional dependencies): not required
    return names


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def grading_copy(dest: Path, forbidden: Iterable[str], available: set[str]) -> dict[str, str]:
    """Copy course_lib to ``dest/course_lib`` without what grading must not offer; return
    {removed module: why}. ``available``: top-level names importable in the kernel."""
    import course_lib

    src_root = Path(course_lib.__file__).resolve().parent.parent
    package = src_root / "course_lib"
    files = {_module_name(p, src_root): p for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    removed: dict[str, str] = {}

    def under(module: str, prefixes: Iterable[str]) -> str | None:
        return next((p for p in prefixes if module == p or module.startswith(p + ".")), None)

    for module in files:
        why = under(module, ALWAYS_REMOVED)
        if why:
            removed[module] = "grading code and torch are never in a grading kernel"
        elif under(module, forbidden):
            removed[module] = "the assignment asks you to write it"
    stdlib = set(sys.stdlib_module_names)
    changed = True
    while changed:
        changed = False
        for module, path in files.items():
            if module in removed:
                continue
            for name in sorted(_top_imports(path)):
                top = name.split(".")[0]
                if top == "course_lib":
                    gone = next((m for m in removed if name == m or name.startswith(m + ".")), None)
                    if gone:
                        removed[module] = f"it imports {gone}, which is not here"
                        changed = True
                        break
                elif top not in stdlib and top not in available and top != "__future__":
                    removed[module] = f"it imports {top}, which a grading kernel does not have"
                    changed = True
                    break
    target = dest / "course_lib"
    if target.exists():
        shutil.rmtree(target)
    for module, path in files.items():
        if module in removed or any(module.startswith(r + ".") for r in removed):
            continue  # a removed package goes whole
        out = target / path.relative_to(package)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    for data in package.rglob("*"):  # package data (the bundled digits)
        if data.is_file() and data.suffix not in (".py", ".pyc") and "__pycache__" not in data.parts:
            rel = data.relative_to(package)
            if rel.parts[0] in ("grading", "torch_impl"):
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data, target / rel)
    lines = ["Not in this grading copy of course_lib:"]
    lines += [f"  {m}: {why}" for m, why in sorted(removed.items())]
    (target / "MISSING.txt").write_text("\n".join(lines) + "\n")
    return removed


def build(dest: Path | str, forbidden: Iterable[str] = ()) -> KernelEnv:
    """Make ``dest/site`` and ``dest/lib`` (see the module docstring)."""
    dest = Path(dest)
    site, lib = dest / "site", dest / "lib"
    for folder in (site, lib):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    dists = required_distributions()
    entries = site_entries(dists)
    for name, path in sorted(entries.items()):
        os.symlink(path, site / name)
    available = {Path(n).stem.split(".")[0] for n in entries if not n.endswith((".dist-info", ".libs"))}
    available |= {n.removesuffix(".py") for n in entries}
    removed = grading_copy(lib, forbidden, available)
    for root, dirs, files in os.walk(dest):  # readable by the sandbox users, writable by nobody else
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    os.chmod(dest, 0o755)
    return KernelEnv(site, lib, dists, removed)


def mounts(env_site: Path | str) -> list[tuple[str, str]]:
    """(source, name) of every entry of a ``site`` folder: what the chroot binds one by one."""
    site = Path(env_site)
    return [(os.path.realpath(p), p.name) for p in sorted(site.iterdir())]
