"""The assignments where students work: a plain Python with NumPy and Matplotlib, Colab, a hub.

Every released notebook starts with a locked set-up cell (``release.SETUP_SOURCE``, built from
``_config.yml``): it must do nothing when ``course_lib`` imports, name the install command for
the student's environment when it does not, and install it by itself on Colab. The package ships
the released notebooks, so that ``course check`` compares against them outside a clone.

The ``slow`` test is a real student install: the project's wheel, a fresh virtual environment
*outside* the checkout with only the ``student`` extra (from PyPI, pinned by constraints.txt),
every released notebook copied to a temporary folder with its answers filled in and run there
with nbclient (every visible test passes), and ``course check`` in that environment exiting 0,
then 1 once a test cell is edited. No torch, SciPy, pandas, scikit-learn, nbgrader or JupyterLab
may be installed by it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.release import SETUP_ID, SETUP_SOURCE, install_spec

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if any(p.glob("*.ipynb")))
SPEC = install_spec(ROOT)
SETUP = SETUP_SOURCE.format(spec=SPEC).rstrip("\n")


def _notebooks():
    for a in ASSIGNMENTS:
        yield f"solutions/{a}", ROOT / "solutions" / a / f"{a}.ipynb"
        yield f"exercises/{a}", ROOT / "exercises" / a / f"{a}.ipynb"
        yield f"course_lib/_exercises/{a}", ROOT / "course_lib" / "_exercises" / f"{a}.ipynb"


@pytest.mark.parametrize("path", [p for _, p in _notebooks()], ids=[n for n, _ in _notebooks()])
def test_every_notebook_starts_with_the_locked_setup_cell(path):
    nb = nbformat.read(str(path), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    meta = first.metadata.get("nbgrader", {})
    assert meta.get("grade_id") == SETUP_ID and meta.get("locked") and not meta.get("solution"), meta
    assert first.source == SETUP, f"{path}: stale set-up cell: run `course release`"
    assert SPEC.startswith("course_lib[student] @ git+") and "github.com" in SPEC


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_package_carries_the_released_notebooks(assignment):
    packaged = ROOT / "course_lib" / "_exercises" / f"{assignment}.ipynb"
    released = ROOT / "exercises" / assignment / f"{assignment}.ipynb"
    assert packaged.read_bytes() == released.read_bytes(), "stale: run `course release`"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"_exercises/*.ipynb"' in pyproject, "package data"


def _run_setup(env_vars: dict[str, str], *, absent: bool = True, colab_stub: bool = False):
    script = textwrap.dedent(f"""
        import sys, types
        calls = []
        if {colab_stub!r}:
            fake = types.ModuleType("subprocess")
            def run(cmd, check):
                calls.append(cmd)
                sys.modules.pop("course_lib", None)  # "installed": the next import works
            fake.run = run
            sys.modules["subprocess"] = fake
        if {absent!r}:
            sys.modules["course_lib"] = None  # not installed
        exec(compile({SETUP!r}, "<setup cell>", "exec"), {{}})
        print("CALLS", calls)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTERHUB_USER", "VSCODE_PID", "CONDA_PREFIX")}
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)


def test_the_setup_cell_does_nothing_when_course_lib_imports():
    proc = _run_setup({}, absent=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "CALLS []" and proc.stderr == "", proc


@pytest.mark.parametrize(
    "env, where",
    [
        ({}, "in this Python"),
        ({"JUPYTERHUB_USER": "alice"}, "on this JupyterHub"),
        ({"BINDER_SERVICE_HOST": "1.2.3.4"}, "on this Binder"),
        ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "on this Kaggle notebook"),
        ({"VSCODE_PID": "123"}, "in this VS Code environment"),
        ({"CONDA_PREFIX": "/opt/conda"}, "in this conda environment"),
    ],
)
def test_the_setup_cell_names_the_install_command_for_the_environment(env, where):
    proc = _run_setup(env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: course_lib is not installed " + where), last
    assert f'%pip install "{SPEC}"' in last and "restart the kernel" in last


def test_the_setup_cell_installs_the_library_itself_on_colab():
    proc = _run_setup({"COLAB_RELEASE_TAG": "release-colab"}, colab_stub=True)
    assert proc.returncode == 0, proc.stderr
    calls = proc.stdout.strip().splitlines()[-1]
    assert "'-m', 'pip', 'install'" in calls and SPEC in calls, calls


# --- a real student install (slow: PyPI) --------------------------------------------------------


def _filled(assignment: str) -> nbformat.NotebookNode:
    """The released notebook with every answer cell replaced by the solution's (markers removed)."""
    release = nbformat.read(str(ROOT / "exercises" / assignment / f"{assignment}.ipynb"), as_version=4)
    solution = nbformat.read(str(ROOT / "solutions" / assignment / f"{assignment}.ipynb"), as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in solution.cells}
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            src = by_id[meta["grade_id"]].source
            cell.source = "\n".join(
                line for line in src.splitlines() if "### BEGIN" not in line and "### END" not in line
            )
    return release


RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
failed = {}
for cell in nb.cells:
    meta = cell.metadata.get("nbgrader", {})
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors and (meta.get("grade") or meta.get("locked") or meta.get("solution")):
        failed[meta.get("grade_id", "?")] = errors[0]["ename"] + ": " + errors[0]["evalue"][:200]
print(json.dumps(failed))
"""


@pytest.fixture(scope="module")
def student_venv(tmp_path_factory):
    """A fresh venv outside the checkout with ``course_lib[student]`` from the built wheel."""
    base = tmp_path_factory.mktemp("student")
    wheels = base / "wheels"
    source = base / "source"  # build from a copy: setuptools writes build/ next to the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "course_lib", source / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("course_lib-*.whl")
    venv = base / "venv"
    python = os.path.realpath(sys.executable)  # the base interpreter, not this environment
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"),
         f"course_lib[student] @ {wheel.as_uri()}"],
        capture_output=True, text=True, timeout=1200, cwd=base,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    site = next((venv / "lib").glob("python3*/site-packages"))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6
    print(f"student install: {seconds:.0f} s, {size:.0f} MB in site-packages")
    (base / "install.json").write_text(json.dumps({"seconds": seconds, "mb": size}))
    return venv, base


@pytest.mark.slow
def test_the_student_install_is_small(student_venv):
    venv, _ = student_venv
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    installed = {d["name"].lower().replace("_", "-") for d in json.loads(out)}
    assert {"course-lib", "numpy", "matplotlib", "nbclient", "ipykernel"} <= installed
    heavy = installed & {"torch", "scipy", "pandas", "scikit-learn", "nbgrader", "jupyterlab", "notebook",
                         "jupyter-server", "optuna", "jupyter-book"}  # fmt: skip
    assert not heavy, f"the student install pulled {sorted(heavy)}"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_visible_test_passes_outside_the_checkout(student_venv, assignment):
    venv, base = student_venv
    work = base / f"work-{assignment}"
    work.mkdir()
    path = work / f"{assignment}.ipynb"
    nbformat.write(_filled(assignment), str(path))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_DATA_DIR", "VIRTUAL_ENV")}
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", RUNNER, str(path), str(work)],
                          capture_output=True, text=True, timeout=900, cwd=work, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert failed == {}, f"{assignment} fails outside the checkout: {failed}"


@pytest.mark.slow
def test_course_check_outside_the_checkout_finds_an_edited_test(student_venv):
    venv, base = student_venv
    work = base / "check"
    work.mkdir()
    nb = _filled("01-activations")
    path = work / "01-activations.ipynb"
    nbformat.write(nb, str(path))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    course = str(venv / "bin" / "course")
    ok = subprocess.run(
        [course, "check", str(path)], capture_output=True, text=True, cwd=work, env=env, timeout=600
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "10/10 parts pass" in ok.stdout and "no released version" not in ok.stdout
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_relu":
            cell.source = "pass"
    nbformat.write(nb, str(path))
    edited = subprocess.run([course, "check", str(path)], capture_output=True, text=True, cwd=work, env=env,
                            timeout=600)  # fmt: skip
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert "test cell test_relu was edited" in edited.stdout, edited.stdout
    shutil.rmtree(work, ignore_errors=True)
