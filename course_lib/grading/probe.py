"""The probe: the only grading code that runs inside a student's kernel, and the plain-data codec.

The judge (``judge.py``) decides every grade outside the kernel. To see what a student's code
does, it sends the kernel this module's *source* with a small piece of instructor code (call
``sigmoid`` on these inputs) and the inputs as plain data; ``main`` runs that code in a copy of
the student's namespace and publishes the named outputs, again as plain data, in one
``display_data`` message of MIME type ``MIME``. Nothing the kernel sends back is unpickled or
executed: ``decode`` accepts JSON made of

- ``None``, booleans, integers, floats (``{"$float": "nan"}`` for the non-finite), strings;
- ``{"$list": [...]}``, ``{"$tuple": [...]}``, ``{"$set": [...]}``, ``{"$dict": [[k, v], ...]}``;
- NumPy arrays as ``.npy`` bytes (``{"$array": base64}``, read with ``allow_pickle=False``, numeric
  and boolean dtypes only) and NumPy scalars (``{"$scalar": [dtype, value]}``);
- ``np.random.Generator`` (PCG64) as its bit generator's state (``{"$rng": state}``);
- anything else as ``Opaque(type name, repr)``, which no check can mistake for a value;

within ``LIMITS`` (depth, items, bytes), and raises ``CodecError`` otherwise. The same functions
encode and decode on both sides. This file uses the standard library and NumPy only, and holds
no test, input or expected value: those stay with the judge.
"""

from __future__ import annotations

import base64
import io
import json
import math
import sys
import time

import numpy as np

#: The MIME type of a probe's answer.
MIME = "application/vnd.course.judge+json"
#: What a payload may hold: nesting depth, containers' items in total, array elements in total,
#: and the characters of the JSON text.
LIMITS = {"depth": 32, "items": 200_000, "elements": 20_000_000, "chars": 256 * 1024 * 1024}
_KINDS = "biuf"  # dtype kinds an array may have: bool, signed, unsigned, float


class CodecError(ValueError):
    """A payload that is not plain data within the limits; the message says what."""


class Opaque:
    """A value the probe could not send as data: its type name and a short repr."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = str(type_name)[:200], str(text)[:500]

    def __repr__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


# --- encoding ---------------------------------------------------------------------------------


def encode(obj, _depth=0, _count=None):
    """``obj`` as JSON-able plain data (see the module docstring)."""
    count = _count if _count is not None else [0, 0]
    count[0] += 1
    if _depth > LIMITS["depth"] or count[0] > LIMITS["items"]:
        raise CodecError("too deeply nested or too many items")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
        if obj.dtype.kind not in _KINDS:
            return {"$opaque": [type(obj).__name__, repr(obj)[:300]]}
        return {"$scalar": [obj.dtype.str, encode(obj.item(), _depth + 1, count)]}
    if isinstance(obj, int):
        if abs(obj) >= 1 << 1000:
            raise CodecError("an integer with over 300 digits")
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else {"$float": repr(float(obj))}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _KINDS or obj.dtype.names is not None:
            return {"$opaque": [f"ndarray of dtype {obj.dtype}", repr(obj)[:300]]}
        count[1] += obj.size
        if count[1] > LIMITS["elements"]:
            raise CodecError(f"arrays of more than {LIMITS['elements']:,} elements in all")
        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)  # (np.ascontiguousarray would make a 0-d array 1-d)
        return {"$array": base64.b64encode(buf.getvalue()).decode("ascii")}
    if isinstance(obj, np.random.Generator) and type(obj.bit_generator).__name__ == "PCG64":
        return {"$rng": _plain_state(obj.bit_generator.state)}
    if isinstance(obj, (list, tuple, set, frozenset)):
        tag = "$list" if isinstance(obj, list) else "$tuple" if isinstance(obj, tuple) else "$set"
        items = sorted(obj, key=repr) if tag == "$set" else obj
        return {tag: [encode(x, _depth + 1, count) for x in items]}
    if isinstance(obj, dict):
        return {
            "$dict": [[encode(k, _depth + 1, count), encode(v, _depth + 1, count)] for k, v in obj.items()]
        }
    try:
        text = repr(obj)
    except Exception:  # a repr that raises: only the type is known
        text = "?"
    return {"$opaque": [type(obj).__name__, text[:300]]}


def _plain_state(state):
    if isinstance(state, dict):
        return {str(k): _plain_state(v) for k, v in state.items()}
    return int(state) if isinstance(state, (int, np.integer)) else state


# --- decoding ---------------------------------------------------------------------------------


def decode(data, _depth=0, _count=None):
    """The value ``encode`` made, from untrusted plain data; ``CodecError`` for anything else."""
    count = _count if _count is not None else [0, 0]
    count[0] += 1
    if _depth > LIMITS["depth"] or count[0] > LIMITS["items"]:
        raise CodecError("too deeply nested or too many items")
    if data is None or isinstance(data, (bool, str, float)):
        return data
    if isinstance(data, int):
        if abs(data) >= 1 << 1000:
            raise CodecError("an integer with over 300 digits")
        return data
    if isinstance(data, list):  # only inside tags
        raise CodecError("a bare list (lists are tagged)")
    if not isinstance(data, dict) or len(data) != 1:
        raise CodecError(f"not a tagged value: {type(data).__name__}")
    ((tag, value),) = data.items()
    if tag in ("$list", "$tuple", "$set"):
        if not isinstance(value, list):
            raise CodecError(f"{tag} holds {type(value).__name__}, not a list")
        items = [decode(x, _depth + 1, count) for x in value]
        if tag == "$list":
            return items
        if tag == "$tuple":
            return tuple(items)
        try:
            return set(items)
        except TypeError as err:
            raise CodecError(f"a set of unhashable items: {err}") from None
    if tag == "$dict":
        if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
            raise CodecError("$dict holds pairs")
        out = {}
        for k, v in value:
            key = decode(k, _depth + 1, count)
            try:
                out[key] = decode(v, _depth + 1, count)
            except TypeError as err:
                raise CodecError(f"an unhashable dict key: {err}") from None
        return out
    if tag == "$float":
        if value not in ("nan", "inf", "-inf"):
            raise CodecError(f"$float {value!r}")
        return float(value)
    if tag == "$array":
        if not isinstance(value, str):
            raise CodecError("$array holds base64 text")
        try:
            raw = base64.b64decode(value, validate=True)
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception as err:  # not .npy, or pickled objects
            raise CodecError(f"not a .npy array: {type(err).__name__}: {err}") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in _KINDS or arr.dtype.names is not None:
            raise CodecError("an array of a dtype that is not numbers or booleans")
        count[1] += arr.size
        if count[1] > LIMITS["elements"]:
            raise CodecError(f"arrays of more than {LIMITS['elements']:,} elements in all")
        return arr
    if tag == "$scalar":
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
            raise CodecError("$scalar holds [dtype, value]")
        try:
            dtype = np.dtype(value[0])
        except TypeError as err:
            raise CodecError(f"$scalar dtype {value[0]!r}: {err}") from None
        inner = decode(value[1], _depth + 1, count)
        if dtype.kind not in _KINDS or not isinstance(inner, (bool, int, float)):
            raise CodecError(f"$scalar of dtype {dtype}")
        return dtype.type(inner)
    if tag == "$rng":
        try:
            bg = np.random.PCG64()
            bg.state = value
            return np.random.Generator(bg)
        except Exception as err:
            raise CodecError(f"$rng state: {type(err).__name__}") from None
    if tag == "$opaque":
        if not (isinstance(value, list) and len(value) == 2):
            raise CodecError("$opaque holds [type, repr]")
        return Opaque(str(value[0]), str(value[1]))
    raise CodecError(f"unknown tag {tag!r}")


def dumps(obj) -> str:
    return json.dumps(encode(obj), allow_nan=False, separators=(",", ":"))


def loads(text: str):
    if not isinstance(text, str) or len(text) > LIMITS["chars"]:
        raise CodecError("a payload that is not text, or longer than the limit")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise CodecError(f"not JSON: {err}") from None
    return decode(data)


def _no_constant(name):
    raise CodecError(f"JSON constant {name} (non-finite floats are tagged)")


# --- in the kernel ----------------------------------------------------------------------------


def run(code: str, inputs_text: str, outputs, user_ns: dict) -> dict:
    """Run the instructor's ``code`` in a copy of ``user_ns`` with ``inputs`` bound; the payload:
    ``{"ok": True, "outputs": {name: value}, "seconds": s}`` or ``{"ok": False, "error": ...}``.

    The copy sees every name the student defined; names the code assigns stay in the copy.
    ``GLOBALS`` is the student's namespace itself (to swap a function in for one call), and
    ``np`` is NumPy whatever the student bound to that name.
    """
    start = time.perf_counter()
    ns = dict(user_ns)
    ns["np"] = np
    ns["GLOBALS"] = user_ns
    try:
        ns.update(loads(inputs_text))
        exec(compile(code, "<judge probe>", "exec"), ns)  # noqa: S102 - the instructor's probe code
        missing = [name for name in outputs if name not in ns]
        if missing:
            raise NameError(f"the probe defined no {', '.join(missing)}")
        result = {"ok": True, "outputs": {name: ns[name] for name in outputs}}
    except BaseException as err:  # noqa: BLE001 - the student's code may raise anything
        if isinstance(err, KeyboardInterrupt):  # the judge interrupted a probe that ran too long
            raise
        result = {"ok": False, "error": {"type": type(err).__name__, "message": _message(err)}}
    result["seconds"] = round(time.perf_counter() - start, 4)
    return result


def _message(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:
        text = "?"
    return text[:2000]


def main(token: str, code: str, inputs_text: str, outputs, user_ns: dict) -> None:
    """Entry point in the kernel: run, encode, publish (one display_data message)."""
    result = run(code, inputs_text, outputs, user_ns)
    try:
        text = dumps(result)
    except Exception as err:  # an output that is not plain data within the limits
        text = dumps({"ok": False, "error": {"type": "CodecError", "message": _message(err)},
                      "seconds": result.get("seconds", 0.0)})  # fmt: skip
    from IPython.display import publish_display_data

    publish_display_data({MIME: {"token": token, "payload": text}})
    sys.stdout.flush()


def kernel_code(token: str, code: str, inputs_text: str, outputs) -> str:
    """The code the judge sends: this module's source, run in a fresh namespace, then ``main``.
    Nothing is left in the student's namespace."""
    from pathlib import Path

    source = Path(__file__).read_text(encoding="utf-8")
    return (
        f"(lambda _p: (exec(compile({source!r}, '<course judge probe>', 'exec'), _p), "
        f"_p['main']({token!r}, {code!r}, {inputs_text!r}, {list(outputs)!r}, globals())))"
        "({'__name__': '__course_probe__'}) and None"
    )
