"""The per-model tool format: config, worker command line, and the "template" format's rendering."""

from __future__ import annotations

import pytest

from nanoserve.config import ModelConfig, Settings, load_settings
from nanoserve.engines.llamacpp.chat import ChatTemplate
from nanoserve.errors import ConfigError
from nanoserve.orchestrator.handles.local import worker_command
from nanoserve.wire.protocol import ChatMessage
from nanoserve.worker.tools import TOOL_FORMATS, parse_tools, render_messages, template_tools

# A small template in the style of Qwen2.5's: it renders tools, calls and results itself.
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools:{% for t in tools %}{{ '\n' + t | tojson }}{% endfor %}"
    "<|im_end|>{{ '\n' }}{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role + '\n' }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>\n{{ c.function | tojson }}\n</tool_call>{% endfor %}"
    "{% elif m.role == 'tool' %}<tool_response>\n{{ m.content }}\n</tool_response>"
    "{% else %}{{ m.content }}{% endif %}<|im_end|>{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def test_template_format_renders_through_the_models_template() -> None:
    fmt = TOOL_FORMATS["template"]
    messages = [
        ChatMessage(role="user", content="go"),
        ChatMessage(
            role="assistant", tool_calls=[{"id": "1", "function": {"name": "f", "arguments": '{"x": 1}'}}]
        ),
        ChatMessage(role="tool", tool_call_id="1", content="done"),
    ]
    tools = parse_tools([TOOL])
    prompt = ChatTemplate(TOOLS_TEMPLATE, bos_token="", eos_token="").render(
        render_messages(messages, tools, fmt), tools=template_tools(tools, fmt)
    )
    assert prompt == (
        '<|im_start|>system\nTools:\n{"type": "function", "function": {"name": "f", "parameters": '
        '{"type": "object", "properties": {}}}}<|im_end|>\n'
        "<|im_start|>user\ngo<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call><|im_end|>\n'
        "<|im_start|>tool\n<tool_response>\ndone\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_tool_format_in_the_config_and_the_worker_command() -> None:
    settings = Settings(models=[ModelConfig(id="q", engine="mock", tool_format="template")])
    cmd = worker_command(settings.models[0], settings, fd=3)
    assert cmd[cmd.index("--tool-format") + 1] == "template"
    assert ModelConfig(id="d").tool_format == "hermes"
    embed = ModelConfig(id="e", kind="embedding", engine="mock-embedding")
    assert "--tool-format" not in worker_command(embed, settings, fd=3)


def test_unknown_tool_format_names_the_field(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "config.yaml"  # type: ignore[operator]
    path.write_text("models:\n  - id: x\n    tool_format: xml\n")
    with pytest.raises(ConfigError, match=r"models\.0\.tool_format"):
        load_settings(path)
