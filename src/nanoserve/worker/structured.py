"""JSON Schema → a bounded grammar (``grammar.py``), for ``response_format`` and tool arguments.

Every document the grammar allows parses and validates against the schema, and every document is
bounded: strings, arrays, free-form objects and numbers get limits (``Bounds``) where the schema
is silent, and the layout is fixed (``{"a": 1, "b": [2, 3]}``: one space after ``:`` and ``,``,
nothing else), so a looping model cannot run away in whitespace.

Supported: ``type`` (one or a list), ``enum``, ``const``, ``properties``/``required`` (declared
order kept), ``additionalProperties`` (a schema or true gives a free-form map when no properties
are declared; otherwise only declared properties are generated, which always validates),
``items``/``prefixItems``/``minItems``/``maxItems``, ``minLength``/``maxLength``, ``format``
``date``/``time``/``date-time``/``uuid`` (other formats are annotations and are not enforced),
``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` (whole-number bounds on
``number``), ``anyOf``/``oneOf`` (alternatives: overlapping ``oneOf`` branches are the caller's
risk), ``allOf`` of object schemas (merged), ``$ref`` into ``$defs``/``definitions``.
Anything else that constrains (``pattern``, ``not``, ``uniqueItems``, recursive ``$ref``, ...)
is refused with a 400 naming the keyword and where it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nanoserve.errors import UnsupportedFeature
from nanoserve.worker.grammar import ROOT, Chars, Element, Grammar, Lit, Repeat, chars
from nanoserve.worker.terminals import DIGIT, FORMATS, naturals

KEY_SEP = ": "
ITEM_SEP = ", "

_UNSUPPORTED = (
    "pattern",
    "patternProperties",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "contains",
    "minContains",
    "maxContains",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "$dynamicRef",
    "$recursiveRef",
)
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")

# One character of a JSON string: anything but a quote, a backslash or a control character, or a
# short escape. (No \\u escapes: a character costs at most 4 bytes, which keeps bounds tight.)
_PLAIN_CHAR = Chars(((0x00, 0x1F), (ord('"'), ord('"')), (ord("\\"), ord("\\")), (0x7F, 0x7F)), negated=True)


@dataclass(frozen=True, slots=True)
class Bounds:
    """Limits where a schema is silent."""

    string_length: int = 200  # characters of a string without maxLength
    key_length: int = 32  # characters of a free-form object's keys
    array_items: int = 16  # items of an array without maxItems
    object_members: int = 8  # members of a free-form object
    integer_digits: int = 12  # digits before the decimal point
    fraction_digits: int = 6  # digits after it
    depth: int = 3  # nesting of free-form values (json_object)


def schema_grammar(schema: Any, *, where: str, bounds: Bounds = Bounds()) -> Grammar:
    """A grammar whose sentences are exactly the bounded, compact JSON documents of ``schema``."""
    grammar = Grammar()
    builder = SchemaBuilder(grammar, schema, where=where, bounds=bounds)
    grammar.rule(ROOT, [builder.value(schema, "#")])
    return grammar


def json_object_grammar(bounds: Bounds = Bounds()) -> Grammar:
    """``response_format: json_object``: any bounded JSON object."""
    grammar = Grammar()
    builder = SchemaBuilder(grammar, {}, where="response_format", bounds=bounds)
    grammar.rule(ROOT, [builder.free_object(bounds.depth)])
    return grammar


def literal(value: Any) -> str:
    """``value`` as the grammar writes it (compact layout, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(ITEM_SEP, KEY_SEP))


class SchemaBuilder:
    """Turns (sub)schemas into grammar elements; ``where`` names the request field in errors."""

    def __init__(self, grammar: Grammar, root: Any, *, where: str, bounds: Bounds):
        self.g = grammar
        self.root = root
        self.where = where
        self.bounds = bounds
        self._refs: list[str] = []  # $refs being expanded (recursion check)
        self._ref_rules: dict[str, Element] = {}

    def refuse(self, message: str, path: str) -> UnsupportedFeature:
        """A 400 naming the problem and where it is (a JSON pointer into the schema)."""
        return UnsupportedFeature(f"{self.where}: {message} (at {path})", param=self.where)

    # -- values ---------------------------------------------------------------------------------

    def value(self, schema: Any, path: str) -> Element:
        if schema is True or schema == {}:
            return self.free_value(self.bounds.depth)
        if schema is False:
            raise self.refuse("a false schema allows no value", path)
        if not isinstance(schema, dict):
            raise self.refuse(f"a schema must be an object, got {type(schema).__name__}", path)
        for keyword in _UNSUPPORTED:
            if keyword in schema:
                raise self.refuse(f"unsupported JSON schema keyword '{keyword}'", path)
        if schema.get("uniqueItems"):
            raise self.refuse("unsupported JSON schema keyword 'uniqueItems'", path)
        if "$ref" in schema:
            return self._ref(schema, path)
        if "allOf" in schema:
            return self.value(self._merge_all_of(schema, path), path)
        if "const" in schema:
            return Lit(literal(schema["const"]))
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise self.refuse("'enum' must be a non-empty list", path)
            return self.g.rule("enum", *([Lit(literal(v))] for v in values))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = schema[key]
                if not isinstance(branches, list) or not branches:
                    raise self.refuse(f"'{key}' must be a non-empty list", path)
                rest = {k: v for k, v in schema.items() if k != key}
                alts = [
                    [self.value({**rest, **b} if isinstance(b, dict) else b, f"{path}/{key}/{i}")]
                    for i, b in enumerate(branches)
                ]
                return self.g.rule("any-of", *alts)
        kind = schema.get("type")
        if isinstance(kind, list):
            if not kind:
                raise self.refuse("'type' must not be an empty list", path)
            alts = [[self.typed(schema, str(t), path)] for t in kind]
            return self.g.rule("types", *alts)
        if kind is None:
            kind = self._infer_type(schema)
            if kind is None:
                return self.free_value(self.bounds.depth)
        return self.typed(schema, str(kind), path)

    def _infer_type(self, schema: dict[str, Any]) -> str | None:
        if any(k in schema for k in ("properties", "required", "additionalProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(k in schema for k in ("minLength", "maxLength", "format")):
            return "string"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return None

    def typed(self, schema: dict[str, Any], kind: str, path: str) -> Element:
        if kind == "object":
            return self.object(schema, path)
        if kind == "array":
            return self.array(schema, path)
        if kind == "string":
            return self.string(schema, path)
        if kind == "integer":
            return self.number(schema, path, integer=True)
        if kind == "number":
            return self.number(schema, path, integer=False)
        if kind == "boolean":
            return self.g.rule("boolean", [Lit("true")], [Lit("false")])
        if kind == "null":
            return Lit("null")
        raise self.refuse(f"unknown type {kind!r} (expected one of {', '.join(_TYPES)})", path)

    # -- $ref and allOf ---------------------------------------------------------------------------

    def _resolve(self, ref: Any, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self.refuse(f"only local $refs ('#/...') are supported, got {ref!r}", path)
        node = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise self.refuse(f"$ref {ref!r} does not resolve", path)
            node = node[part]
        return node

    def _ref(self, schema: dict[str, Any], path: str) -> Element:
        ref = schema["$ref"]
        if ref in self._refs:
            raise self.refuse(f"recursive $ref {ref!r} is not supported (its documents are unbounded)", path)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if not siblings and ref in self._ref_rules:
            return self._ref_rules[ref]
        target = self._resolve(ref, path)
        self._refs.append(ref)
        try:
            if siblings and isinstance(target, dict):
                element = self.value({"allOf": [target, siblings]}, f"{path}/$ref")
            else:
                element = self.value(target, f"{path}/$ref")
        finally:
            self._refs.pop()
        if not siblings:
            self._ref_rules[ref] = element
        return element

    def _merge_all_of(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            raise self.refuse("'allOf' must be a non-empty list", path)
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for i, part in enumerate(parts):
            while isinstance(part, dict) and "$ref" in part and len(part) == 1:
                part = self._resolve(part["$ref"], f"{path}/allOf/{i}")
            if not isinstance(part, dict):
                raise self.refuse("'allOf' parts must be schemas", f"{path}/allOf/{i}")
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                elif key in merged and merged[key] != value and key not in ("title", "description"):
                    raise self.refuse(f"'allOf' with conflicting '{key}' is not supported", path)
                else:
                    merged[key] = value
        return merged

    # -- objects ----------------------------------------------------------------------------------

    def object(self, schema: dict[str, Any], path: str) -> Element:
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise self.refuse("'properties' must be an object", path)
        required = schema.get("required") or []
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise self.refuse("'required' must be a list of property names", path)
        extra = schema.get("additionalProperties", True)
        if not props and not required:
            if extra is False:
                return Lit("{}")
            value = (
                self.free_value(self.bounds.depth - 1)
                if extra is True
                else self.value(extra, f"{path}/additionalProperties")
            )
            return self._free_members(value, self.bounds.object_members)
        names = list(props) + [r for r in required if r not in props]
        members = [
            (
                self.g.seq(
                    "kv", Lit(literal(n) + KEY_SEP), self.value(props.get(n, True), f"{path}/properties/{n}")
                ),
                n in required,
            )
            for n in names
        ]
        return self.g.rule("object", [Lit("{"), *self._members(members, 0), Lit("}")])

    def _members(self, members: Sequence[tuple[Element, bool]], i: int) -> list[Element]:
        """Members ``i..`` when none has been written yet (declared order; optional ones may be left out)."""
        if i == len(members):
            return []
        element, needed = members[i]
        after = self._after(members, i + 1)
        if needed:
            return [element, *after]
        rest = self._members(members, i + 1)
        return [self.g.rule("members", [element, *after], rest)]

    def _after(self, members: Sequence[tuple[Element, bool]], i: int) -> list[Element]:
        """Members ``i..`` once one has been written: each preceded by the separator."""
        out: list[Element] = []
        for element, needed in members[i:]:
            if needed:
                out += [Lit(ITEM_SEP), element]
            else:
                out.append(Repeat(self.g.rule("more", [Lit(ITEM_SEP), element]), 0, 1))
        return out

    def _free_members(self, value: Element, most: int) -> Element:
        key = self._string_body(1, self.bounds.key_length)
        member = self.g.rule("member", [key, Lit(KEY_SEP), value])
        more = self.g.rule("more", [Lit(ITEM_SEP), member])
        body = self.g.rule("members", [member, Repeat(more, 0, most - 1)])
        return self.g.rule("map", [Lit("{"), Repeat(body, 0, 1), Lit("}")])

    # -- arrays -----------------------------------------------------------------------------------

    def array(self, schema: dict[str, Any], path: str) -> Element:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, False
        lo = _count(schema.get("minItems", 0), "minItems", self, path)
        hi_raw = schema.get("maxItems")
        hi = max(self.bounds.array_items, lo) if hi_raw is None else _count(hi_raw, "maxItems", self, path)
        if items is False:
            hi = min(hi, len(prefix))
        if lo > hi:
            raise self.refuse("minItems exceeds what the array allows", path)
        elements = [self.value(s, f"{path}/prefixItems/{i}") for i, s in enumerate(prefix[:hi])]
        item = None if items is False else self.value(items, f"{path}/items")
        # positions 0..hi-1: prefix items first, then `item`; positions below lo are required
        seq: list[Element] = [Lit("[")]
        tail: list[Element] = []
        for pos in range(min(len(elements), hi)):
            sep = [] if pos == 0 else [Lit(ITEM_SEP)]
            if pos < lo:
                seq += [*sep, elements[pos]]
            else:
                tail.append(self.g.seq("item", *sep, elements[pos]))
        body = self._optional_chain(tail)
        rest = hi - len(elements)
        if item is not None and rest > 0:
            start = len(elements)
            need = max(lo - start, 0)
            sep_item = self.g.rule("item", [Lit(ITEM_SEP), item])
            if start == 0:
                if need:
                    body = [item, Repeat(sep_item, need - 1, rest - 1)]
                else:
                    body = [Repeat(self.g.rule("items", [item, Repeat(sep_item, 0, rest - 1)]), 0, 1)]
            elif tail:  # optional prefix items first: more items only after all of them
                body = self._optional_chain(tail, [Repeat(sep_item, 0, rest)])
            else:
                body = [Repeat(sep_item, need, rest)]
        return self.g.rule("array", [*seq, *body, Lit("]")])

    def _optional_chain(self, parts: Sequence[Element], last: Sequence[Element] = ()) -> list[Element]:
        """``(p0 (p1 (... last)?)?)?``: each part only after the one before it."""
        inner: list[Element] = list(last)
        for part in reversed(parts):
            inner = [Repeat(self.g.seq("opt", part, *inner), 0, 1)]
        return inner

    # -- strings ----------------------------------------------------------------------------------

    def string(self, schema: dict[str, Any], path: str) -> Element:
        fmt = schema.get("format")
        if fmt in FORMATS:
            return self.g.rule(f"{fmt}-string", [Lit('"'), FORMATS[fmt](self.g), Lit('"')])
        lo = _count(schema.get("minLength", 0), "minLength", self, path)
        hi_raw = schema.get("maxLength")
        hi = max(self.bounds.string_length, lo) if hi_raw is None else _count(hi_raw, "maxLength", self, path)
        if lo > hi:
            raise self.refuse("minLength exceeds maxLength", path)
        return self._string_body(lo, hi)

    def _string_body(self, lo: int, hi: int) -> Element:
        char = self.g.rule("char", [_PLAIN_CHAR], [Lit("\\"), chars('"\\/bfnrt')])
        return self.g.rule(f"string-{lo}-{hi}", [Lit('"'), Repeat(char, lo, hi), Lit('"')])

    # -- numbers ----------------------------------------------------------------------------------

    def number(self, schema: dict[str, Any], path: str, *, integer: bool) -> Element:
        lo, lo_excl = _bound(schema, "minimum", "exclusiveMinimum", self, path)
        hi, hi_excl = _bound(schema, "maximum", "exclusiveMaximum", self, path)
        cap = 10**self.bounds.integer_digits
        if integer:
            lo_i = None if lo is None else (math.floor(lo) + 1 if lo_excl else math.ceil(lo))
            hi_i = None if hi is None else (math.ceil(hi) - 1 if hi_excl else math.floor(hi))
            lo_i = -(cap - 1) if lo_i is None else lo_i
            hi_i = cap - 1 if hi_i is None else hi_i
            if lo_i > hi_i:
                raise self.refuse("the integer range is empty", path)
            alts: list[list[Element]] = []
            if hi_i >= 0:
                alts += naturals(self.g, max(lo_i, 0), hi_i)
            if lo_i < 0:
                alts += [[Lit("-"), *alt] for alt in naturals(self.g, max(-hi_i, 1), -lo_i)]
            return self.g.rule("integer", *alts)
        for value, name in ((lo, "minimum"), (hi, "maximum")):
            if value is not None and value != int(value):
                raise self.refuse(
                    f"'{name}' {value} on a number: only whole-number bounds are supported", path
                )
        lo_n = None if lo is None else int(lo)
        hi_n = None if hi is None else int(hi)
        if lo_n is not None and hi_n is not None and (lo_n > hi_n or (lo_n == hi_n and (lo_excl or hi_excl))):
            raise self.refuse("the number range is empty", path)
        alts = []
        if hi_n is None or hi_n >= 0:  # zero and positive values
            low, low_excl = (0, False) if lo_n is None or lo_n < 0 else (lo_n, lo_excl)
            high, high_excl = (cap, True) if hi_n is None else (hi_n, hi_excl)
            alts += self._magnitudes(low, low_excl, high, high_excl)
        if lo_n is None or lo_n < 0:  # negative values: "-" and a magnitude
            low, low_excl = (0, True) if hi_n is None or hi_n >= 0 else (-hi_n, hi_excl)
            high, high_excl = (cap, True) if lo_n is None else (-lo_n, lo_excl)
            alts += [[Lit("-"), *alt] for alt in self._magnitudes(low, low_excl, high, high_excl)]
        if not alts:
            raise self.refuse("the number range is empty", path)
        return self.g.rule("number", *alts)

    def _magnitudes(self, low: int, low_excl: bool, high: int, high_excl: bool) -> list[list[Element]]:
        """Decimal numbers m (no sign, no exponent) with low < or <= m < or <= high."""
        digits = self.bounds.fraction_digits
        any_frac = Repeat(self.g.rule("frac", [Lit("."), Repeat(DIGIT, 1, digits)]), 0, 1)
        zero_frac = Repeat(self.g.rule("zero-frac", [Lit("."), Repeat(Lit("0"), 1, digits)]), 0, 1)
        nonzero_frac = self.g.rule("nonzero-frac", [Lit("."), Repeat(DIGIT, 0, digits - 1), chars("1-9")])
        alts: list[list[Element]] = []
        if low == high:
            return [] if low_excl or high_excl else [[Lit(str(low)), zero_frac]]
        alts.append([Lit(str(low)), nonzero_frac if low_excl else any_frac])
        if low + 1 <= high - 1:
            alts += [[*alt, any_frac] for alt in naturals(self.g, low + 1, high - 1)]
        if not high_excl:
            alts.append([Lit(str(high)), zero_frac])
        return alts

    # -- free-form values (json_object, {} and true schemas) ---------------------------------------

    def free_value(self, depth: int) -> Element:
        b = self.bounds
        alts: list[list[Element]] = [
            [self._string_body(0, b.string_length)],
            [self.number({}, "", integer=False)],
            [Lit("true")],
            [Lit("false")],
            [Lit("null")],
        ]
        if depth > 0:
            alts = [[self.free_object(depth)], [self._free_array(depth)], *alts]
        return self.g.rule(f"value-{depth}", *alts)

    def free_object(self, depth: int) -> Element:
        return self._free_members(self.free_value(depth - 1), self.bounds.object_members)

    def _free_array(self, depth: int) -> Element:
        item = self.free_value(depth - 1)
        more = self.g.rule("item", [Lit(ITEM_SEP), item])
        body = self.g.rule("items", [item, Repeat(more, 0, self.bounds.array_items - 1)])
        return self.g.rule("list", [Lit("["), Repeat(body, 0, 1), Lit("]")])


# -- helpers ----------------------------------------------------------------------------------------


def _count(value: Any, name: str, builder: SchemaBuilder, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise builder.refuse(f"'{name}' must be a non-negative integer", path)
    if value > 100_000:
        raise builder.refuse(f"'{name}' {value} is too large", path)
    return value


def _bound(
    schema: dict[str, Any], inclusive: str, exclusive: str, builder: SchemaBuilder, path: str
) -> tuple[float | None, bool]:
    """The tighter of ``inclusive``/``exclusive`` (draft 2020 numbers; draft 4 booleans too)."""
    value, excl = schema.get(inclusive), False
    ex = schema.get(exclusive)
    if isinstance(ex, bool):  # draft 4: exclusiveMinimum is a flag on minimum
        excl = ex and value is not None
    elif ex is not None:
        if not isinstance(ex, (int, float)):
            raise builder.refuse(f"'{exclusive}' must be a number", path)
        if value is None or (ex >= value if inclusive == "minimum" else ex <= value):
            value, excl = ex, True
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise builder.refuse(f"'{inclusive}' must be a number", path)
    if value is not None and not math.isfinite(value):
        raise builder.refuse(f"'{inclusive}' must be finite", path)
    return value, excl
