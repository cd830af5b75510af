"""Run an n8n workflow's nodes in order, as n8n would, for the few node types and the expression
forms examples/n8n uses; anything else raises (so the workflow cannot silently outgrow it).

Nodes: manual trigger, Set (``assignments``), IF (``conditions`` with strict type validation),
HTTP Request (GET, or POST with a JSON body; a status >= 400 fails the node, as in n8n).
Expressions: a string starting with ``=`` whose ``{{ ... }}`` parts are ``$json`` or
``$('Node').item.json`` followed by ``.name`` / ``[0]`` / ``['name']`` accessors. A string that is
one expression keeps its value's type; otherwise the parts are interpolated as text (numbers as
JSON, strings as they are) — n8n's rules for these forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

_PART = re.compile(r"{{(.*?)}}", re.DOTALL)
_TOKEN = re.compile(r"""\s*(?:\$\('([^']+)'\)|(\$json)|\.([A-Za-z_]\w*)|\[(\d+)\]|\['([^']+)'\])""")


class Unsupported(Exception):
    """The workflow uses something this replay does not implement."""


@dataclass
class Run:
    outputs: dict[str, Any] = field(default_factory=dict)  # node name -> its item's json
    order: list[str] = field(default_factory=list)
    decisions: dict[str, bool] = field(default_factory=dict)  # IF node -> its conditions' result
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, url, json body)


def evaluate(expression: str, current: Any, run: Run) -> Any:
    """``expression``'s value; ``current`` is ``$json`` (the incoming item)."""
    code = expression.strip()
    value: Any = None
    pos = 0
    while pos < len(code):
        match = _TOKEN.match(code, pos)
        if match is None:
            raise Unsupported(f"expression {expression!r} at {code[pos:]!r}")
        node, is_json, attr, index, key = match.groups()
        if node is not None:
            if pos != 0:
                raise Unsupported(expression)
            value = {"item": {"json": run.outputs[node]}}  # KeyError: that node has not run
        elif is_json is not None:
            if pos != 0:
                raise Unsupported(expression)
            value = current
        elif index is not None:
            value = value[int(index)]
        else:
            name = attr if attr is not None else key
            value = value.get(name) if isinstance(value, dict) else None  # JS: undefined
        pos = match.end()
    return value


def render(template: Any, current: Any, run: Run) -> Any:
    """A parameter's value: as is unless it is an expression (``=...``)."""
    if not isinstance(template, str) or not template.startswith("="):
        return template
    text = template[1:]
    parts = _PART.findall(text)
    if len(parts) == 1 and _PART.fullmatch(text.strip()):
        return evaluate(parts[0], current, run)

    def interpolate(match: re.Match[str]) -> str:
        value = evaluate(match.group(1), current, run)
        return value if isinstance(value, str) else json.dumps(value)

    return _PART.sub(interpolate, text)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: wrong type: {value!r} is not a number (strict type validation)")
    return value


OPERATIONS: dict[tuple[str, str], Callable[[float, float], bool]] = {
    ("number", "lt"): lambda a, b: a < b,
    ("number", "gt"): lambda a, b: a > b,
}


def condition(params: dict[str, Any], current: Any, run: Run) -> bool:
    conditions = params["conditions"]
    if conditions["combinator"] != "and" or conditions["options"].get("typeValidation") != "strict":
        raise Unsupported("only strict 'and' conditions")
    results = []
    for cond in conditions["conditions"]:
        op = (cond["operator"]["type"], cond["operator"]["operation"])
        if op not in OPERATIONS:
            raise Unsupported(f"operator {op}")
        left = _number(render(cond["leftValue"], current, run), cond["leftValue"])
        right = _number(render(cond["rightValue"], current, run), cond["rightValue"])
        results.append(OPERATIONS[op](left, right))
    return all(results)


def assignments(params: dict[str, Any], current: Any, run: Run) -> dict[str, Any]:
    out = {}
    for item in params["assignments"]["assignments"]:
        value = render(item["value"], current, run)
        if item["type"] == "number":
            value = _number(value, item["name"])
        elif item["type"] != "string" or not isinstance(value, str):
            raise Unsupported(f"assignment {item['name']} of type {item['type']}")
        out[item["name"]] = value
    return out


def http_request(params: dict[str, Any], current: Any, run: Run, client: httpx.Client) -> Any:
    method = params.get("method", "GET")
    url = render(params["url"], current, run)
    headers = {}
    if params.get("sendHeaders"):
        headers = {
            h["name"]: render(h["value"], current, run) for h in params["headerParameters"]["parameters"]
        }
    body = None
    if params.get("sendBody"):
        if params.get("specifyBody") != "json":
            raise Unsupported("only JSON bodies")
        body = json.loads(render(params["jsonBody"], current, run))
    run.requests.append((method, url, body))
    answer = client.request(method, url, headers=headers, json=body)
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {url}: {answer.status_code} {answer.text}")
    return answer.json()


def replay(workflow: dict[str, Any], client: httpx.Client, settings: dict[str, Any] | None = None) -> Run:
    """Execute ``workflow`` from its trigger; ``settings`` replace values of its Settings node
    (what a user edits after importing it)."""
    nodes = {n["name"]: n for n in workflow["nodes"]}
    run = Run()
    queue = [(n["name"], None) for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.manualTrigger"]
    while queue:
        name, current = queue.pop(0)
        node = nodes[name]
        kind, params = node["type"].removeprefix("n8n-nodes-base."), node["parameters"]
        branch = 0
        if kind == "manualTrigger":
            output: Any = {}
        elif kind == "set":
            output = assignments(params, current, run)
            if name == "Settings" and settings:
                output |= settings
        elif kind == "if":
            run.decisions[name] = condition(params, current, run)
            output, branch = current, 0 if run.decisions[name] else 1
        elif kind == "httpRequest":
            output = http_request(params, current, run, client)
        else:
            raise Unsupported(f"node type {node['type']}")
        run.outputs[name] = output
        run.order.append(name)
        outputs = workflow["connections"].get(name, {}).get("main", [])
        if branch < len(outputs):
            queue += [(c["node"], output) for c in outputs[branch]]
    return run
