"""What the two llama-cpp-python baselines (``highlevel.py``, ``llamacpp_server.py``) share.

* ``disable_extra_bufts``: llama-cpp-python's high-level ``Llama`` has no parameter for
  ``use_extra_bufts``, and with it on (the default) this build segfaults in the AMX kernels on the
  first multi-token ``llama_decode`` on this project's machines (see docs/engine-llamacpp.md).
  The patch makes ``llama_model_default_params`` return it off, as nanoserve's engine and
  ``ceiling.py`` load their models; it changes nothing else.
* ``eog_token_ids``: the end-of-generation tokens of a GGUF, so a baseline can ban them with a
  logit bias (how "ignore EOS" is spelled in llama-cpp-python).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BANNED = -1e9  # a logit bias no token survives


def disable_extra_bufts(llama_cpp: Any) -> None:
    """Make every model llama-cpp-python loads from now on use plain CPU buffers."""
    module = llama_cpp.llama_cpp  # the ctypes module, where Llama() looks the function up
    default_params = module.llama_model_default_params
    if getattr(default_params, "nanoserve_patched", False):
        return

    def without_extra_bufts() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    without_extra_bufts.nanoserve_patched = True  # type: ignore[attr-defined]
    module.llama_model_default_params = without_extra_bufts


def eog_token_ids(llama_cpp: Any, path: Path) -> list[int]:
    """Every token of the model's vocabulary that ends a generation (EOS, EOT, <|im_end|> ...)."""
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    params.use_extra_bufts = False
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise SystemExit(f"error: cannot read the vocabulary of {path}")
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        n = llama_cpp.llama_vocab_n_tokens(vocab)
        return [t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    finally:
        llama_cpp.llama_model_free(model)


def ban_tokens(token_ids: list[int]) -> dict[str, float]:
    """A ``logit_bias`` (OpenAI spelling: string keys) that forbids these tokens."""
    return {str(t): BANNED for t in token_ids}
