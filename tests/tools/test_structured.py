"""JSON Schema → grammar: every sentence validates, every prefix completes, refusals name the feature."""

from __future__ import annotations

import datetime as dt
import json
import random
from enum import Enum
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field
from sentences import sentence

from nanoserve.errors import UnsupportedFeature
from nanoserve.worker.structured import Bounds, json_object_grammar, literal, schema_grammar

WHERE = "response_format.json_schema.schema"


class Color(str, Enum):
    red = "red"
    green = "green"


class Address(BaseModel):
    street: str = Field(max_length=40)
    zip_code: str | None = None


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=150)
    height_m: float = Field(gt=0, lt=3)
    tags: list[str] = Field(default_factory=list, max_length=4)
    favourite: Color
    kind: Literal["human", "robot"]
    address: Address | None = None
    scores: dict[str, int] = Field(default_factory=dict)


SCHEMAS: dict[str, dict[str, Any]] = {
    "object": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 12},
            "count": {"type": "integer", "minimum": -5, "maximum": 120},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
            "ok": {"type": "boolean"},
            "nothing": {"type": "null"},
        },
        "required": ["name", "count"],
        "additionalProperties": False,
    },
    "all-optional": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {}}},
    "array-bounds": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
    "tuple": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": {"type": "boolean"},
        "minItems": 1,
        "maxItems": 5,
    },
    "closed-tuple": {"type": "array", "prefixItems": [{"const": 1}, {"const": "x"}], "items": False},
    "enum-const": {
        "type": "object",
        "properties": {"e": {"enum": ["a", 1, None, {"k": [1, 2]}, "é \"q\""]}, "c": {"const": "fixed"}},
        "required": ["e", "c"],
    },
    "type-list": {"type": ["string", "integer", "null"], "maxLength": 3},
    "any-of": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "object", "properties": {"x": {"type": "number"}}}]},
    "refs": {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}},
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}, "path": {"type": "array", "items": {"$ref": "#/$defs/point"}, "maxItems": 3}},
        "required": ["a"],
    },
    "all-of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}}, "required": ["b"]},
        ]
    },
    "map": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
    "required-undeclared": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a", "b"]},
    "formats": {
        "type": "object",
        "properties": {
            "d": {"type": "string", "format": "date"},
            "t": {"type": "string", "format": "time"},
            "dt": {"type": "string", "format": "date-time"},
            "u": {"type": "string", "format": "uuid"},
            "email": {"type": "string", "format": "email", "maxLength": 20},
        },
        "required": ["d", "t", "dt", "u", "email"],
    },
    "free": {},
    "pydantic": Person.model_json_schema(),
}
FORMATS = jsonschema.FormatChecker(["date", "uuid"])
FORMATS.checks("time", raises=ValueError)(lambda v: bool(dt.time.fromisoformat(v)))
FORMATS.checks("date-time", raises=ValueError)(lambda v: bool(dt.datetime.fromisoformat(v)))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_random_sentences_validate(name: str) -> None:
    schema = SCHEMAS[name]
    grammar = schema_grammar(schema, where=WHERE)
    rng = random.Random(name)
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMATS if name == "formats" else None)
    for i in range(100):
        text = sentence(grammar, rng, extra_repeats=3 if i % 5 else 300)
        validator.validate(json.loads(text))
        assert "\n" not in text  # the layout is fixed: no free whitespace


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_prefix_closes_to_a_valid_document(name: str) -> None:
    schema = SCHEMAS[name]
    grammar = schema_grammar(schema, where=WHERE)
    rng = random.Random(f"prefix-{name}")
    bound = grammar.close_bound()
    validator = jsonschema.Draft202012Validator(schema)
    for _ in range(6):
        text = sentence(grammar, rng, extra_repeats=6)
        matcher = grammar.matcher()
        for cut in range(len(text) + 1):
            closing = matcher.completion()
            assert len(closing.encode()) <= bound
            validator.validate(json.loads(text[:cut] + closing))
            assert matcher.feed(text[cut : cut + 1])
        assert matcher.accepted


def test_pydantic_documents_are_sentences() -> None:
    person = Person(
        name="Ada", age=36, height_m=1.7, tags=["x"], favourite=Color.red, kind="human",
        address=Address(street="Main St 1"), scores={"a": 3},
    )  # fmt: skip
    grammar = schema_grammar(Person.model_json_schema(), where=WHERE)
    matcher = grammar.matcher()
    assert matcher.feed(literal(person.model_dump(mode="json"))) and matcher.accepted


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(-12, 37), (0, 0), (5, 5), (100, 999), (-1000, -999), (7, 1234), (-3, -1), (0, 10**6)],
)
def test_integer_ranges_are_exact(lo: int, hi: int) -> None:
    grammar = schema_grammar({"type": "integer", "minimum": lo, "maximum": hi}, where=WHERE)
    window = list(range(lo - 40, lo + 40)) + list(range(hi - 40, hi + 40))
    for n in window:
        m = grammar.matcher()
        accepted = m.feed(str(n)) and m.accepted
        assert accepted == (lo <= n <= hi), n
    for bad in ("007", "-0", "+1", "1.0", "1e3"):
        m = grammar.matcher()
        assert not (m.feed(bad) and m.accepted)


def test_exclusive_integer_bounds() -> None:
    grammar = schema_grammar({"type": "integer", "exclusiveMinimum": 2.5, "exclusiveMaximum": 6}, where=WHERE)
    accepted = [n for n in range(-10, 20) if (m := grammar.matcher()).feed(str(n)) and m.accepted]
    assert accepted == [3, 4, 5]


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ({"minimum": 0, "maximum": 1}, ["0", "0.5", "1", "1.0", "0.999999"], ["1.5", "-0.1", "2", "1.01"]),
        ({"exclusiveMinimum": 0}, ["0.01", "3", "12.5"], ["0", "0.0", "-1", "0.000"]),
        ({"exclusiveMaximum": 10, "minimum": -2}, ["9.999", "-2", "-1.5", "0"], ["10", "10.0", "-2.5", "11"]),
        ({"maximum": -1}, ["-1", "-1.0", "-7.25"], ["0", "-0.5", "3"]),
        ({}, ["-0.5", "0", "123.456", "-42"], ["01", "1.", ".5", "1e5", "--1"]),
    ],
)
def test_number_ranges(schema: dict[str, Any], good: list[str], bad: list[str]) -> None:
    grammar = schema_grammar({"type": "number", **schema}, where=WHERE)
    for text in good:
        m = grammar.matcher()
        assert m.feed(text) and m.accepted, text
    for text in bad:
        m = grammar.matcher()
        assert not (m.feed(text) and m.accepted), text


def test_strings_are_bounded_when_the_schema_is_silent() -> None:
    bounds = Bounds(string_length=10)
    grammar = schema_grammar({"type": "string"}, where=WHERE, bounds=bounds)
    assert grammar.max_bytes() == 2 + 4 * 10
    m = grammar.matcher()
    assert not m.feed('"' + "a" * 11)
    escaped = schema_grammar({"type": "string", "maxLength": 2}, where=WHERE)
    m = escaped.matcher()
    assert m.feed('"\\n\\"') and m.completion() == '"'  # two characters, both escapes


def test_json_object_is_bounded_and_nests() -> None:
    grammar = json_object_grammar(Bounds(depth=2, object_members=2, array_items=2, string_length=4))
    assert grammar.max_bytes() is not None
    rng = random.Random(3)
    docs = [json.loads(sentence(grammar, rng)) for _ in range(200)]
    assert all(isinstance(d, dict) and len(d) <= 2 for d in docs)
    assert any(isinstance(v, (dict, list)) for d in docs for v in d.values())


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "string", "pattern": "^a+$"}, "'pattern' (at #)"),
        ({"type": "object", "properties": {"x": {"not": {"type": "null"}}}}, "'not' (at #/properties/x)"),
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "'uniqueItems'"),
        ({"type": "number", "multipleOf": 0.5}, "'multipleOf'"),
        ({"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}, "recursive $ref"),
        ({"$ref": "https://example.com/schema.json"}, "only local $refs"),
        ({"$ref": "#/$defs/missing"}, "does not resolve"),
        ({"type": "number", "minimum": 0.5}, "whole-number bounds"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "range is empty"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength exceeds maxLength"),
        ({"type": "date"}, "unknown type 'date'"),
        ({"type": "array", "maxItems": -1}, "'maxItems' must be a non-negative integer"),
    ],
)
def test_unsupported_features_are_named(schema: dict[str, Any], words: str) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        schema_grammar(schema, where=WHERE)
    assert words in info.value.message
    assert info.value.param == WHERE
    assert info.value.status == 400
