"""JSON bytes that JavaScript re-serializes to exactly the same bytes.

bitHuman's Node receiver example signs `JSON.stringify(req.body)`: JavaScript's re-serialization
of the parsed body, not the bytes on the wire. A body therefore verifies there only when
`JSON.stringify(JSON.parse(body)) === body`. `js_dumps` writes such bodies: compact separators,
raw UTF-8, numbers spelled the way ECMAScript's Number::toString spells them (`1.0` -> `1`,
`1e21` -> `1e+21`), integer-like object keys first (JavaScript objects enumerate them first) and
only numbers JavaScript holds exactly. Anything else is refused, never sent unverifiable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_MAX_ARRAY_INDEX = 2**32 - 2


def js_dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value` that round-trips byte for byte through JavaScript.

    Raises ValueError for non-finite floats, integers beyond 2**53-1 and strings holding
    surrogate code points; TypeError for values JSON cannot express.
    """
    parts: list[str] = []
    _write(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("strings must not contain surrogate code points") from exc


def js_number(number: int | float) -> str:
    """`number` as JavaScript's `String(number)` spells it."""
    if isinstance(number, int):
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return str(number)
        raise ValueError(f"integer {number} is beyond JavaScript's safe range (2**53-1)")
    if not math.isfinite(number):
        raise ValueError(f"{number} has no JSON form")
    if number == 0:
        return "0"  # covers -0.0, which JSON.stringify also writes as 0
    sign = "-" if number < 0 else ""
    return sign + _js_positive_float(abs(number))


def _js_positive_float(number: float) -> str:
    # repr gives the shortest digits that round-trip, as ECMAScript requires; only the layout
    # of those digits differs. Bring them to JavaScript's form: 0.<digits> x 10**point.
    mantissa, _, exponent = repr(number).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent or 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    significant = significant.rstrip("0")
    count = len(significant)
    if count <= point <= 21:
        return significant + "0" * (point - count)
    if 0 < point <= 21:
        return significant[:point] + "." + significant[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + significant
    power = point - 1
    head = significant if count == 1 else significant[0] + "." + significant[1:]
    return f"{head}e{'+' if power >= 0 else '-'}{abs(power)}"


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(js_number(value))
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_object(value: Mapping[Any, Any], out: list[str]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be strings, not {type(key).__name__}")
    out.append("{")
    for index, key in enumerate(_js_key_order(value)):
        if index:
            out.append(",")
        out.append(encode_basestring(key))
        out.append(":")
        _write(value[key], out)
    out.append("}")


def _js_key_order(value: Mapping[str, Any]) -> list[str]:
    """Keys in the order JavaScript enumerates them: array indices ascending, then the rest."""
    indices = [key for key in value if key[:1].isdigit() and _is_array_index(key)]
    if not indices:
        return list(value)
    chosen = set(indices)
    return sorted(indices, key=int) + [key for key in value if key not in chosen]


def _is_array_index(key: str) -> bool:
    return _ARRAY_INDEX.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX
