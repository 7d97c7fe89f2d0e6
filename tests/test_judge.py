"""The judge's pieces, without kernels: the probe codec, the judge's verdicts, the static
delegation check, the grading kernel's import path, and the sanitizer of feedback.

The codec is the wall between a student's kernel and the judge: it must turn every value a check
needs into plain data and back, and refuse everything else (pickles, object arrays, deep nests,
NaN spelled as JSON constants) with a ``CodecError``, never by running anything. The static
check must find delegation however it is hidden (aliases, helpers, attributes stored on NumPy,
``importlib``, star imports, default arguments, closures) and accept plain NumPy code. End-to-end
attacks with real kernels are in ``test_grading.py``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from course_lib.grading import integrity, kernel_env, probe, sanitize
from course_lib.grading.judge import (
    InProcessKernel,
    Judge,
    StudentError,
    judge_part,
    seed_for,
)

# --- the codec ----------------------------------------------------------------------------------

plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5) | st.integers(-5, 5), inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(plain)
def test_plain_data_round_trips(value):
    assert same(probe.loads(probe.dumps(value)), value)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.uint16, np.bool_]),
                  hnp.array_shapes(min_dims=0, max_dims=4, max_side=5)))  # fmt: skip
def test_arrays_round_trip_with_dtype_and_shape(arr):
    back = probe.loads(probe.dumps({"a": arr, "s": arr.reshape(-1)[:1].sum() if arr.size else None}))
    assert same(back["a"], arr)


def test_numpy_scalars_and_generators_keep_their_kind():
    g = np.random.default_rng(5)
    g.random(3)
    back = probe.loads(probe.dumps([np.float64(1.5), np.int32(-4), np.bool_(True), g, {1, 2}]))
    assert type(back[0]) is np.float64 and type(back[1]) is np.int32 and type(back[2]) is np.bool_
    assert back[3].random() == g.random(), "a Generator crosses in its exact state"
    assert back[4] == {1, 2}


def test_what_is_not_data_arrives_as_an_opaque_value_that_equals_nothing():
    class Anything:
        def __eq__(self, other):
            return True

    back = probe.loads(probe.dumps({"x": Anything(), "f": len, "o": np.array([object()], dtype=object)}))
    assert all(isinstance(v, probe.Opaque) for v in back.values())
    assert back["x"] != "sigmoid" and back["x"] != 1.0, "an object equal to everything loses that power"


def _npy(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    "payload, why",
    [
        ("[1, 2]", "bare list"),
        ('{"$array": "' + _npy(np.array([{"a": 1}], dtype=object)) + '"}', "not a .npy array"),
        ('{"$array": "not base64!"}', "not a .npy array"),
        ('{"$float": "1e400"}', "$float"),
        ("NaN", "JSON constant"),
        ('{"$scalar": ["O", 1]}', "dtype"),
        ('{"$dict": [[{"$list": []}, 1]]}', "unhashable"),
        ('{"$rng": {"bit_generator": "MT19937"}}', "$rng"),
        ('{"$exec": "import os"}', "unknown tag"),
        ('{"a": 1, "b": 2}', "not a tagged value"),
        ("1" + "0" * 400, "300 digits"),
        ('{"$list": [' * 40 + "]}" * 40, "deeply nested"),
    ],
)
def test_hostile_payloads_are_refused_not_run(payload, why):
    with pytest.raises(probe.CodecError, match=re.escape(why)):
        probe.loads(payload)


def test_the_probe_never_unpickles(tmp_path, monkeypatch):
    """An .npy holding a pickle whose loading would run code: refused, and nothing ran."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arr = np.empty(1, dtype=object)
    arr[0] = Evil()
    with pytest.raises(probe.CodecError):
        probe.loads(json.dumps({"$array": _npy(arr)}))
    assert not marker.exists()


def test_kernel_code_leaves_nothing_in_the_students_namespace():
    ns = {"__name__": "__main__", "double": lambda v: 2 * v}
    published = []
    import IPython.display

    original = IPython.display.publish_display_data
    IPython.display.publish_display_data = lambda data, **k: published.append(data)
    try:
        exec(probe.kernel_code("tok", "__r = double(x)", probe.dumps({"x": 21}), ["__r"]), ns)  # noqa: S102
    finally:
        IPython.display.publish_display_data = original
    assert set(ns) == {"__name__", "double", "__builtins__"}
    (data,) = published
    assert data[probe.MIME]["token"] == "tok"
    assert probe.loads(data[probe.MIME]["payload"])["outputs"] == {"__r": 42}


# --- the judge's verdicts ------------------------------------------------------------------------


def _judge() -> Judge:
    judge = Judge("demo")

    @judge.part("test_double", answers=["double"])
    def _(k, rng):
        x = rng.normal(size=4)
        assert np.allclose(k.call("double", x), 2 * x), "double is wrong"

    @judge.part("test_raises")
    def _(k, rng):
        try:
            k.call("double", "a string")
        except StudentError as err:
            assert err.type == "TypeError", err
        else:
            raise AssertionError("double must refuse a string")

    return judge


def test_a_part_passes_fails_and_reports_what_the_students_code_raised():
    good = {"double": lambda v: 2 * v if not isinstance(v, str) else (_ for _ in ()).throw(TypeError("no"))}
    judge = _judge()
    assert judge_part(judge, "test_double", InProcessKernel(dict(good)), student="a").passed
    assert judge_part(judge, "test_raises", InProcessKernel(dict(good)), student="a").passed
    bad = judge_part(judge, "test_double", InProcessKernel({"double": lambda v: v}), student="a")
    assert not bad.passed and bad.message.startswith("double is wrong")  # (pytest adds its own detail)
    broken = judge_part(judge, "test_double", InProcessKernel({"double": lambda v: 1 / 0}), student="a")
    assert not broken.passed and "ZeroDivisionError" in broken.message
    missing = judge_part(judge, "test_double", InProcessKernel({}), student="a")
    assert not missing.passed and "NameError" in missing.message
    unknown = judge_part(judge, "test_nope", InProcessKernel({}), student="a")
    assert not unknown.passed and "no judge" in unknown.message


def test_a_hard_coded_answer_fails_because_inputs_differ_per_student():
    judge = _judge()
    x = np.random.default_rng(seed_for("demo", "test_double", "alice")).normal(size=4)
    fixed = {"double": lambda v, _answer=2 * x: _answer}  # alice's answer, typed in
    assert judge_part(judge, "test_double", InProcessKernel(dict(fixed)), student="alice").passed
    assert not judge_part(judge, "test_double", InProcessKernel(dict(fixed)), student="bob").passed
    assert seed_for("demo", "test_double", "alice") == seed_for("demo", "test_double", "alice")


def test_the_static_check_runs_before_any_probe():
    judge = _judge()
    sources = [
        "import numpy as np",
        "import torch\n\ndef double(v):\n    return torch.as_tensor(v).numpy() * 2",
    ]
    verdict = judge_part(judge, "test_double", InProcessKernel({"double": lambda v: 2 * v}), student="a",
                         sources=sources)  # fmt: skip
    assert not verdict.passed and verdict.delegation and "torch" in verdict.message


def test_registering_a_part_twice_is_an_error():
    judge = Judge("demo")
    judge.part("test_a")(lambda k, rng: None)
    with pytest.raises(ValueError, match="two judges"):
        judge.part("test_a")(lambda k, rng: None)


# --- the static check ---------------------------------------------------------------------------

SETUP = "import numpy as np\nimport math\n"
CLEAN = {
    "numpy": "def f(x):\n    z = np.exp(-np.abs(x))\n    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))",
    "helpers": "def _h(x):\n    return np.tanh(x)\n\ndef f(x):\n    return _h(x) + [v * v for v in x][0]",
    "attribute-named-torch": "def f(cfg):\n    return cfg.torch + cfg.scipy",
    "magic-line": "%matplotlib inline\ndef f(x):\n    return np.tanh(x)",
    "recursion": "def f(n):\n    return f(n - 1) if n else 0",
    "local-named-like-a-module": "def f(x):\n    torch = 3\n    return x * torch",
}
DELEGATES = {
    "alias": ("from course_lib.numpy_impl.activations import sigmoid as _s\ndef f(x):\n    return _s(x)",
              "course_lib.numpy_impl.activations.sigmoid"),
    "import-inside": ("def f(x):\n    import torch\n    return torch.sigmoid(x)", "imports torch"),
    "renamed": ("import torch as numpy2\ndef f(x):\n    return numpy2.sigmoid(x)", "torch"),
    "stashed-on-numpy": ("import torch\nnp.sig = torch.sigmoid\ndef f(x):\n    return np.sig(x)", "torch"),
    "setattr": ("import torch\nsetattr(math, 'sig', torch.sigmoid)\n"
                "def f(x):\n    return math.sig(x)", "torch"),
    "importlib": ("def f(x):\n    import importlib\n    return importlib.import_module('torch').sigmoid(x)",
                  "importlib"),
    "string-module": ("def f(x):\n    return __import__('to' + 'rch')", "__import__"),
    "eval": ("def f(x):\n    return eval('x')", "eval"),
    "closure": ("def make():\n    from scipy.special import expit\n    return lambda x: expit(x)\nf = make()",
                "scipy.special"),
    "star": ("from scipy.special import *\ndef f(x):\n    return expit(x)", "import *"),
    "class": ("import course_lib.numpy_impl.activations as A\nclass Net:\n    def g(self, x):\n"
              "        return A.relu(x)\ndef f(x):\n    return Net().g(x)", "course_lib"),
    "default-argument": ("from scipy.special import expit\ndef f(x, g=expit):\n    return g(x)", "scipy"),
    "sys-modules": ("import sys\ndef f(x):\n    return sys.modules['torch'].sigmoid(x)", ".modules"),
    "gc": ("import gc\ndef f(x):\n    return [o for o in gc.get_objects()][0]", "gc"),
    "pickle": ("import pickle\ndef f(x):\n    return pickle.loads(x)", "pickle"),
    "package-attribute": ("import course_lib\n"
                          "def f(x):\n    return course_lib.numpy_impl.activations.sigmoid(x)", "course_lib"),
    "scaffolding": ("from course_lib.numpy_impl.mlp import MLP\ndef f(x):\n    return MLP([2, 2]).forward(x)",
                    "course_lib.numpy_impl.mlp.MLP"),
    "forged-module": ("from course_lib.numpy_impl import activations as _A\n"
                      "def f(x):\n    return _A.relu(x)\nf.__module__ = '__main__'", "course_lib"),
    "frames": ("import sys\ndef f(x):\n    return sys._getframe(1).f_globals['torch']", "_getframe"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_plain_numpy_code_is_accepted(name):
    assert integrity.delegation_problems([SETUP, CLEAN[name]], ["f"]) == []


@pytest.mark.parametrize("name", sorted(DELEGATES))
def test_delegation_is_found_however_it_hides(name):
    source, culprit = DELEGATES[name]
    problems = integrity.delegation_problems([SETUP, source], ["f"], labels=["cell setup", "cell f"])
    assert problems, f"{name}: delegates but passed"
    assert any(culprit in p for p in problems), f"{name}: {culprit!r} not named in {problems}"
    with pytest.raises(integrity.FromScratchError, match="must be your own NumPy code"):
        integrity.assert_from_scratch([SETUP, source], ["f"])


def test_the_instructors_locked_cells_may_use_the_library_but_not_lend_it():
    locked = (
        "from course_lib.numpy_impl.mlp import MLP\n\ndef provided(x):\n    return MLP([2, 2]).forward(x)"
    )
    uses_helper = "def f(x):\n    return provided(x) * 0 + np.tanh(x)"
    assert integrity.delegation_problems([SETUP, locked, uses_helper], ["f"], trusted=[0, 1]) == []
    lends = "def f(x):\n    return MLP([2, 2]).forward(x)"
    assert integrity.delegation_problems([SETUP, locked, lends], ["f"], trusted=[0, 1]) != [], (
        "a name a locked cell imports from the library is still the library"
    )
    rebinds = (
        "def provided(x):\n    import torch\n    return torch.tanh(x)\n\ndef f(x):\n    return provided(x)"
    )
    assert integrity.delegation_problems([SETUP, locked, rebinds], ["f"], trusted=[0, 1]) != []


def test_a_cell_that_does_not_parse_defines_nothing():
    assert integrity.delegation_problems([SETUP, "def f(x:\n    return torch"], ["f"]) == []


# --- the grading kernel's import path ------------------------------------------------------------


@pytest.fixture(scope="module")
def kenv(tmp_path_factory):
    return kernel_env.build(tmp_path_factory.mktemp("kenv"), ["course_lib.numpy_impl.activations"])


def test_the_kernel_environment_has_the_students_packages_and_nothing_forbidden(kenv):
    names = {p.name for p in kenv.site.iterdir()}
    assert {"numpy", "matplotlib", "ipykernel", "IPython", "tqdm"} <= names
    assert not names & {"torch", "scipy", "sklearn", "pandas", "nbgrader", "optuna"}
    assert "course_lib.numpy_impl.activations" in kenv.removed
    assert kenv.removed.get("course_lib.numpy_impl.mlp", "").startswith(
        "it imports course_lib.numpy_impl.activations"
    )
    assert "course_lib.grading.judge" in kenv.removed and "course_lib.torch_impl" in kenv.removed
    assert (kenv.lib / "course_lib" / "MISSING.txt").is_file()


def test_a_python_on_that_path_cannot_import_what_answers_must_not_use(kenv):
    code = textwrap.dedent("""
        import importlib, json
        out = {}
        for m in ["numpy", "matplotlib.pyplot", "ipykernel", "course_lib.data",
                  "course_lib.numpy_impl.initializers", "torch", "scipy", "sklearn", "pandas",
                  "course_lib.numpy_impl.activations", "course_lib.numpy_impl.mlp",
                  "course_lib.grading.judge"]:
            try:
                importlib.import_module(m)
                out[m] = True
            except ImportError:
                out[m] = False
        print(json.dumps(out))
    """)
    env = {
        "PYTHONPATH": kenv.pythonpath,
        "PATH": "/usr/bin:/bin",
        "MPLBACKEND": "Agg",
        "HOME": str(kenv.site.parent),
    }
    python = kernel_env.os.path.realpath(sys.executable)
    proc = subprocess.run([python, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=kenv.site.parent)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert {m for m, ok in got.items() if ok} == {
        "numpy", "matplotlib.pyplot", "ipykernel", "course_lib.data", "course_lib.numpy_impl.initializers"
    }  # fmt: skip


# --- feedback sanitizing -------------------------------------------------------------------------


PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title>
<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js"></script></head>
<body><div class="cell"><p>$x^2$ ok</p>{student}</div></body></html>"""


@pytest.mark.parametrize(
    "student, gone",
    [
        ("<script>alert(1)</script>", "<script>alert"),
        ('<img src="x" onerror="alert(1)">', "onerror"),
        ('<a href="javascript:alert(1)">x</a>', "javascript:"),
        ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "data:text/html"),
        ('<svg onload="alert(1)"><circle r="1"/></svg>', "onload"),
        ('<iframe src="https://evil.example"></iframe>', "<iframe"),
        ('<div style="background:url(https://evil.example/x)">x</div>', "evil.example"),
        ('<form action="https://evil.example"><input></form>', "<form"),
        ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "svg+xml"),
    ],
)
def test_feedback_html_loses_every_active_part_of_student_content(student, gone):
    out = sanitize.feedback_html(PAGE.format(student=student))
    body = out[out.index("<body") :]
    assert gone not in body, f"{gone!r} survived: {body}"
    assert "$x^2$ ok" in body, "the page's text and math stay"
    head = out[: out.index("<body")]
    assert "Content-Security-Policy" in head and "default-src 'none'" in head and "script-src" not in head
    assert "<script" not in out and "<title>t</title>" in head, "no script at all; the grader's head is kept"


def test_math_becomes_mathml_outside_code():
    text = sanitize.math_to_mathml("Cost $O(n^2)$, code `$x$` kept, $$\\frac{a}{b}$$ and 5$ or 6$.")
    assert text.count("<math") == 2 and 'display="block"' in text
    assert "`$x$`" in text and "5$ or 6$" in text, "code and prices stay as they are"
    page = sanitize.feedback_html(PAGE.format(student=text))
    assert "<mfrac>" in page and "<msup>" in page, "MathML survives the sanitizer"


def test_inline_images_and_plain_markup_survive():
    png = "data:image/png;base64,iVBORw0KGgo="
    out = sanitize.feedback_html(
        PAGE.format(student=f'<img src="{png}" alt="a plot"><pre><code>x = 1</code></pre>')
    )
    assert f'src="{png}"' in out and "<pre><code>x = 1</code></pre>" in out


@pytest.mark.parametrize(
    "text, expected",
    [('=HYPERLINK("http://x")', "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-2", "'-2"),
     ("@SUM", "'@SUM"), ("alice", "alice"), ("doe, jane", "doe, jane")],
)  # fmt: skip
def test_csv_cells_never_start_a_formula(text, expected):
    assert sanitize.cell(text) == expected


def test_markdown_escapes_tables_links_and_html():
    text = sanitize.md("a | b <script>x</script> [click](javascript:alert(1)) **bold** `code`")
    assert "|" not in text.replace("\\|", "") and "<script>" not in text and "](" not in text
    assert "\\*\\*bold\\*\\*" in text and "\\`code\\`" in text
