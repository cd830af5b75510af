"""Varied tool and JSON-schema prompts for the validity sweeps (test_sweep.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


TOOLS: list[dict[str, Any]] = [
    _tool(
        "get_weather",
        "Current weather in a city",
        {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        ["city"],
    ),
    _tool(
        "get_time",
        "Local time in an IANA timezone",
        {"timezone": {"type": "string", "maxLength": 40}},
        ["timezone"],
    ),
    _tool(
        "add",
        "Add two numbers",
        {"a": {"type": "number"}, "b": {"type": "number"}},
        ["a", "b"],
    ),
    _tool(
        "set_alarm",
        "Set an alarm",
        {
            "hour": {"type": "integer", "minimum": 0, "maximum": 23},
            "minute": {"type": "integer", "minimum": 0, "maximum": 59},
            "label": {"type": "string", "maxLength": 30},
        },
        ["hour", "minute"],
    ),
    _tool(
        "send_email",
        "Send an email",
        {
            "to": {"type": "string", "maxLength": 60},
            "subject": {"type": "string", "maxLength": 60},
            "body": {"type": "string", "maxLength": 200},
        },
        ["to", "subject", "body"],
    ),
    _tool(
        "create_event",
        "Add an event to the calendar",
        {
            "title": {"type": "string", "maxLength": 60},
            "date": {"type": "string", "format": "date"},
            "attendees": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 5},
        },
        ["title", "date"],
    ),
    _tool(
        "convert_currency",
        "Convert an amount between currencies",
        {
            "amount": {"type": "number", "minimum": 0},
            "from": {"type": "string", "enum": ["USD", "EUR", "GBP", "JPY"]},
            "to": {"type": "string", "enum": ["USD", "EUR", "GBP", "JPY"]},
        },
        ["amount", "from", "to"],
    ),
    _tool(
        "search_web",
        "Search the web",
        {
            "query": {"type": "string", "maxLength": 80},
            "max_results": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        ["query"],
    ),
]
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}

TOOL_PROMPTS: list[tuple[str, str]] = [
    ("get_weather", "What's the weather in Paris?"),
    ("get_weather", "Is it raining in Seattle? Use fahrenheit."),
    ("get_time", "What time is it in Tokyo?"),
    ("get_time", "Tell me the current time in New York."),
    ("add", "What is 12.5 plus 30?"),
    ("add", "Add 7 and 35 for me."),
    ("set_alarm", "Wake me up at 6:45."),
    ("set_alarm", "Set an alarm for 14:30 called meeting."),
    ("send_email", "Email bob@example.com that the report is ready."),
    ("send_email", "Send alice@example.org a thank-you note for the flowers."),
    ("create_event", "Put a dentist appointment on 2025-03-14 in my calendar."),
    ("create_event", "Schedule a team lunch on 2024-12-01 with Ann and Raj."),
    ("convert_currency", "How much is 100 dollars in euros?"),
    ("convert_currency", "Convert 2500 yen to pounds."),
    ("search_web", "Find recent news about solar panels."),
    ("search_web", "Look up the best hiking trails in Norway, 3 results."),
]


def _schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


SHORT = {"type": "string", "maxLength": 40}
SCHEMAS: dict[str, dict[str, Any]] = {
    "person": _schema(
        {"name": SHORT, "age": {"type": "integer", "minimum": 0, "maximum": 120}, "email": SHORT}
    ),
    "city": _schema(
        {
            "name": SHORT,
            "country": SHORT,
            "population": {"type": "integer", "minimum": 0},
            "capital": {"type": "boolean"},
        }
    ),
    "recipe": _schema(
        {
            "title": SHORT,
            "ingredients": {"type": "array", "items": SHORT, "minItems": 1, "maxItems": 6},
            "minutes": {"type": "integer", "minimum": 1, "maximum": 600},
        }
    ),
    "product": _schema(
        {
            "name": SHORT,
            "price": {"type": "number", "minimum": 0, "maximum": 10000},
            "category": {"type": "string", "enum": ["food", "tools", "books", "toys"]},
            "in_stock": {"type": "boolean"},
        }
    ),
    "event": _schema({"title": SHORT, "date": {"type": "string", "format": "date"}, "location": SHORT}),
    "review": _schema(
        {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "summary": {"type": "string", "maxLength": 80},
            "pros": {"type": "array", "items": SHORT, "maxItems": 3},
        },
        ["rating", "summary"],
    ),
    "address": _schema(
        {
            "person": SHORT,
            "address": _schema({"street": SHORT, "city": SHORT, "zip": {"type": "string", "maxLength": 10}}),
        }
    ),
    "sentiment": _schema(
        {
            "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        }
    ),
    "todo": _schema(
        {
            "items": {
                "type": "array",
                "items": _schema({"task": SHORT, "done": {"type": "boolean"}}),
                "minItems": 1,
                "maxItems": 4,
            }
        }
    ),
    "answer": _schema(
        {
            "answer": {"type": "string", "maxLength": 120},
            "sources": {"type": ["array", "null"], "items": SHORT, "maxItems": 2},
        }
    ),
}
SCHEMA_PROMPTS: list[tuple[str, str]] = [
    ("person", "Invent a person and describe them."),
    ("person", "Describe Ada Lovelace."),
    ("city", "Tell me about Berlin."),
    ("city", "Describe a small town in Italy."),
    ("recipe", "Give me a pancake recipe."),
    ("recipe", "How do I make a tomato salad?"),
    ("product", "Describe a hammer for an online shop."),
    ("product", "A children's book about space, for sale."),
    ("event", "A concert next summer in Vienna."),
    ("event", "My birthday party on 2025-06-01."),
    ("review", "Review a pizza place you loved."),
    ("review", "Review a terrible hotel."),
    ("address", "Where does Sherlock Holmes live?"),
    ("address", "Make up an address for Jane."),
    ("sentiment", "Classify: 'I really enjoyed this movie!'"),
    ("sentiment", "Classify: 'The service was slow and rude.'"),
    ("todo", "Plan my Saturday chores."),
    ("todo", "Steps to repot a plant."),
    ("answer", "Why is the sky blue?"),
    ("answer", "What is the capital of Canada?"),
]
AUTO_PROMPTS = [
    "Hello! How are you?",
    "What's the weather in Madrid?",
    "Write a haiku about the sea.",
    "Convert 50 euros to dollars please.",
    "Thanks, that is all.",
]


@dataclass
class Case:
    kind: str  # "call" (forced), "json" (json_schema) or "auto"
    prompt: str
    body: dict[str, Any] = field(default_factory=dict)
    target: str = ""  # tool name or schema name


def cases(n: int, *, seed: int = 0) -> list[Case]:
    """``n`` requests cycling through forced calls (named and required), json_schema answers and
    auto mode, with varied sampling; deterministic for a seed."""
    out: list[Case] = []
    tools = itertools.cycle(TOOL_PROMPTS)
    schemas = itertools.cycle(SCHEMA_PROMPTS)
    autos = itertools.cycle(AUTO_PROMPTS)
    for i in range(n):
        sampling: dict[str, Any] = (
            {"temperature": 0} if i % 3 == 0 else {"temperature": 0.8, "seed": seed + i}
        )
        slot = i % 10
        if slot < 5:
            name, prompt = next(tools)
            choice: Any = "required" if slot % 2 else {"type": "function", "function": {"name": name}}
            body = {"tools": TOOLS, "tool_choice": choice, "max_tokens": 64, **sampling}
            out.append(Case("call", prompt, body, name))
        elif slot < 9:
            name, prompt = next(schemas)
            fmt = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": SCHEMAS[name], "strict": True},
            }
            out.append(Case("json", prompt, {"response_format": fmt, "max_tokens": 96, **sampling}, name))
        else:
            out.append(Case("auto", next(autos), {"tools": TOOLS, "max_tokens": 64, **sampling}))
    return out
