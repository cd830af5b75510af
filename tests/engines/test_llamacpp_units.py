"""Pure parts of the llama.cpp engine: slot choice, chat templates, detokenization, weights path.

None of these import llama_cpp (the gateway relies on that for ``weights``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nanoserve.engines.llamacpp.chat import CHATML_TEMPLATE, ChatTemplate
from nanoserve.engines.llamacpp.detokenize import TextStream
from nanoserve.engines.llamacpp.slots import SlotChoice, SlotView, busy_runs, choose_slot, common_prefix
from nanoserve.errors import BadRequest, UnsupportedFeature
from nanoserve.profiles.llamacpp import served_weights_path, source_digest

SYS = list(range(100, 400))  # a 300-token "system prompt"


def free(cached: list[int], last_used: int = 0) -> SlotView:
    return SlotView(cached=cached, free=True, last_used=last_used)


def busy(cached: list[int], last_used: int = 0) -> SlotView:
    return SlotView(cached=cached, free=False, last_used=last_used)


@pytest.mark.parametrize(
    ("prompt", "slots", "expected"),
    [
        # nothing free
        ([1, 2, 3], [busy([1, 2])], None),
        # empty slots: the least recently used one (never used = -1)
        ([1, 2, 3], [free([], 5), free([], -1)], SlotChoice(slot=1, reuse=0)),
        # the free slot with the longest common prefix wins over an older empty one
        ([1, 2, 3, 4], [free([], -1), free([1, 2, 9], 3)], SlotChoice(slot=1, reuse=2)),
        # never reuse the whole prompt: the last token must be evaluated for its logits
        ([1, 2, 3], [free([1, 2, 3, 4, 5])], SlotChoice(slot=0, reuse=2)),
        # a busy slot with a much longer prefix is copied into a free slot, the one next to it
        (SYS + [7], [busy(SYS + [8]), free([5], 2), free([], 1)], SlotChoice(slot=1, reuse=300, copy_from=0)),
        # ... among equally worthless free slots, the least recently used one
        (
            SYS + [7],
            [busy(SYS + [8]), free([5], 2), free([], 1), busy([])],
            SlotChoice(slot=2, reuse=300, copy_from=0),
        ),
        (SYS + [7], [free([5], 2), busy(SYS + [8]), free([], 1)], SlotChoice(slot=2, reuse=300, copy_from=1)),
        # ... but not when the gain is below copy_min
        (SYS[:20] + [7], [busy(SYS[:20]), free([], 1)], SlotChoice(slot=1, reuse=0)),
        # a free slot with the same prefix needs no copy
        (SYS + [7], [busy(SYS + [8]), free(SYS + [9], 1)], SlotChoice(slot=1, reuse=300)),
    ],
)
def test_choose_slot(prompt: list[int], slots: list[SlotView], expected: SlotChoice | None) -> None:
    assert choose_slot(prompt, slots, copy_min=32) == expected


def test_choose_slot_keeps_busy_slots_in_one_run() -> None:
    """Busy slots 0-1 and 3 with 2 free: 2 closes the gap, though 4 was used longer ago."""
    slots = [busy([]), busy([]), free([], 5), busy([]), free([], 1), free([], 0)]
    assert choose_slot([1, 2, 3], slots) == SlotChoice(slot=2, reuse=0)
    # a prefix shorter than copy_min does not outweigh a run; a longer one does
    slots[5] = free([1, 2, 3, 4], 0)
    assert choose_slot([1, 2, 3, 9], slots, copy_min=32) == SlotChoice(slot=2, reuse=0)
    assert choose_slot([1, 2, 3, 9], slots, copy_min=2) == SlotChoice(slot=5, reuse=3)
    # without the prefix cache, runs first, then the least recently used slot
    assert choose_slot(
        [1], [free([], 3), busy([]), free([], 9), free([], 0)], prefix_cache=False
    ) == SlotChoice(slot=0, reuse=0)


def test_busy_runs() -> None:
    assert [busy_runs(s) for s in (set(), {0}, {0, 1, 2}, {0, 1, 3}, {1, 3, 5})] == [0, 1, 1, 2, 3]


def test_choose_slot_without_prefix_cache_reuses_nothing() -> None:
    choice = choose_slot([1, 2, 3], [free([1, 2, 3], 4), free([], 7)], prefix_cache=False)
    assert choice == SlotChoice(slot=0, reuse=0)


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_text_stream_holds_split_utf8_characters() -> None:
    data = "é😀".encode()
    stream = TextStream()
    pieces = [stream.feed(data[i : i + 1])[0] for i in range(len(data))]
    assert pieces == ["", "é", "", "", "", "😀"]
    assert stream.finish() == ""


def test_text_stream_stop_sequence_across_tokens() -> None:
    stream = TextStream(["\n\n"])
    assert stream.feed(b"Hello\n") == ("Hello", False)
    assert stream.feed(b"\nmore") == ("", True)


def test_text_stream_finish_releases_held_text() -> None:
    stream = TextStream(["STOP"])
    assert stream.feed(b"abc ST") == ("abc ", False)
    assert stream.finish() == "ST"
    broken = TextStream()
    assert broken.feed("é".encode()[:1]) == ("", False)
    assert broken.finish() == "\ufffd"


def test_chat_template_renders_chatml() -> None:
    template = ChatTemplate(CHATML_TEMPLATE, bos_token="<s>", eos_token="</s>")
    text = template.render([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert not template.render([{"role": "user", "content": "Hi"}], add_generation_prompt=False).endswith(
        "assistant\n"
    )


def test_chat_template_passes_tokens_tools_and_errors() -> None:
    source = (
        "{{ bos_token }}{% if tools %}{{ tools | tojson }}{% endif %}"
        "{% for m in messages %}{% if m.role == 'bad' %}{{ raise_exception('no bad roles') }}{% endif %}"
        "{{ m.content }}{{ eos_token }}{% endfor %}"
    )
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert template.render([{"role": "user", "content": "x"}], tools=tools) == (
        '<s>[{"type": "function", "function": {"name": "f"}}]x</s>'
    )
    with pytest.raises(BadRequest, match="no bad roles"):
        template.render([{"role": "bad", "content": "x"}])
    with pytest.raises(UnsupportedFeature):
        template.render([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


def _gguf(path: Path, file_type: int) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_file_type(file_type)
    writer.add_tensor("t", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_served_weights_path(tmp_path: Path) -> None:
    q4_1 = _gguf(tmp_path / "m-q4_1.gguf", 3)
    q8_0 = _gguf(tmp_path / "m-q8_0.gguf", 7)
    data = tmp_path / "data"
    assert served_weights_path(q4_1, "keep", data) == q4_1
    assert served_weights_path(q8_0, "q8_0", data) == q8_0  # already the served type
    converted = served_weights_path(q4_1, "q8_0", data)
    assert converted == data / "weights" / f"{source_digest(q4_1)[:16]}-q8_0.gguf"
    assert served_weights_path(q4_1, "q4_0", data).name.endswith("-q4_0.gguf")
    assert served_weights_path(q8_0, "q4_0", data).parent == data / "weights"


def test_light_modules_do_not_import_llama_cpp() -> None:
    code = (
        "import sys; import nanoserve.profiles.llamacpp; "
        "import nanoserve.engines.llamacpp.chat, nanoserve.engines.llamacpp.slots; "
        "assert 'llama_cpp' not in sys.modules, 'llama_cpp imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_options_defaults_and_validation() -> None:
    from pydantic import ValidationError

    from nanoserve.profiles.llamacpp import LlamaCppOptions

    options = LlamaCppOptions()
    assert (options.quantize, options.kv_cache_type) == ("q8_0", "q8_0")
    with pytest.raises(ValidationError, match="flash attention"):
        LlamaCppOptions(kv_cache_type="q8_0", flash_attn="off")
    assert LlamaCppOptions(kv_cache_type="f16", flash_attn="off").flash_attn == "off"
    with pytest.raises(ValidationError):
        LlamaCppOptions(unknown=1)
