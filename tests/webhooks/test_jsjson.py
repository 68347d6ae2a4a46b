"""js_dumps: bytes that JavaScript re-serializes identically (the Node side is in test_node)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.jsjson import MAX_SAFE_INTEGER, js_dumps, js_number

# A loaded CI machine must not fail a correct example on time.
no_deadline = settings(deadline=None)

# Expected spellings from ECMAScript's Number::toString.
JS_SPELLINGS = [
    (1705312200.0, "1705312200"),
    (1.0, "1"),
    (-0.0, "0"),
    (0.1, "0.1"),
    (-1.5, "-1.5"),
    (123.456, "123.456"),
    (1e20, "100000000000000000000"),
    (1e21, "1e+21"),
    (1.5e21, "1.5e+21"),
    (1e-6, "0.000001"),
    (1.5e-7, "1.5e-7"),
    (1e-7, "1e-7"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (2.0**60, "1152921504606847000"),
    (0.000123, "0.000123"),
    (1e16, "10000000000000000"),
    (MAX_SAFE_INTEGER, "9007199254740991"),
    (-MAX_SAFE_INTEGER, "-9007199254740991"),
]


@pytest.mark.parametrize(("number", "spelling"), JS_SPELLINGS)
def test_numbers_are_spelled_as_javascript_spells_them(number: float, spelling: str) -> None:
    assert js_number(number) == spelling


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, MAX_SAFE_INTEGER + 1, -(2**60)])
def test_numbers_javascript_cannot_hold_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        js_dumps({"n": bad})


def test_compact_raw_utf8_and_escapes() -> None:
    body = js_dumps({"message": 'héllo 😀 "q" \\ \n\t\x01 \u2028', "ok": True, "none": None})
    assert (
        body
        == (
            '{"message":"héllo 😀 \\"q\\" \\\\ \\n\\t\\u0001 \u2028","ok":true,"none":null}'
        ).encode()
    )


def test_integer_like_keys_come_first_as_in_javascript() -> None:
    body = js_dumps({"b": 1, "10": 2, "a": 3, "2": 4, "01": 5, "4294967295": 6})
    assert body == b'{"2":4,"10":2,"b":1,"a":3,"01":5,"4294967295":6}'


def test_surrogates_and_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError):
        js_dumps({"m": "\ud800"})
    with pytest.raises(TypeError):
        js_dumps({"m": object()})
    with pytest.raises(TypeError):
        js_dumps({1: "x"})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=5), children, max_size=4
        )
    ),
    max_leaves=20,
)


@no_deadline
@given(json_values)
def test_output_is_valid_json_for_the_same_value(value: object) -> None:
    body = js_dumps(value)
    # Large whole floats are spelled without a fraction, as in JavaScript: parse ints as floats.
    assert json.loads(body, parse_int=float) == value


@no_deadline
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_spelling_parses_back_to_the_same_float(number: float) -> None:
    assert float(js_number(number)) == number
