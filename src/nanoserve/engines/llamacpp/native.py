"""A typed layer over llama-cpp-python's low-level ctypes API: model, context, vocabulary, batch.

Only this module, ``sampling.py``, ``convert.py`` and ``scheduler.py`` import ``llama_cpp``. After
loading, the context belongs to the decode thread; the vocabulary (``tokenize``, ``piece``) is
read-only and safe to use from any thread, as llama-server does from its HTTP threads.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import llama_cpp
import numpy as np
import numpy.typing as npt

from nanoserve.errors import EngineError

log = logging.getLogger(__name__)
native_log = logging.getLogger("nanoserve.llama_cpp")

# enum ggml_log_level (NONE, DEBUG, INFO, WARN, ERROR; 5 = CONT continues the previous line's level)
# -> logging level; llama.cpp's INFO is chatty (a hundred lines per load), so it goes to DEBUG.
_LOG_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_KV_TYPES = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}
_FLASH_ATTN = {
    "auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
    "on": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    "off": llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}


@cache
def install_native_logging() -> object:
    """Route llama.cpp's log lines to Python logging (once per process: the hook is global)."""
    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        py_level = last[0] if level == 5 else _LOG_LEVELS.get(level, logging.DEBUG)
        last[0] = py_level
        if native_log.isEnabledFor(py_level):
            line = text.decode("utf-8", "replace").rstrip("\n")
            if line:
                native_log.log(py_level, "%s", line)

    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    return _callback  # kept alive by the cache


@dataclass(frozen=True, slots=True)
class ContextConfig:
    n_ctx: int  # all sequences together
    n_seq: int
    n_batch: int
    threads: int
    kv_unified: bool
    flash_attn: str = "auto"
    use_mmap: bool = True
    kv_type: str = "f16"
    n_gpu_layers: int = 0  # -1: all
    main_gpu: int = 0
    tensor_split: tuple[float, ...] = ()


class Batch:
    """A llama_batch over numpy arrays we own: filled with slice assignments, no per-token ctypes."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.seq = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        self._n_seq_id = np.ones(capacity, dtype=np.int32)
        base = self.seq.ctypes.data
        itemsize = self.seq.itemsize
        self._seq_ptrs = (ctypes.POINTER(ctypes.c_int32) * capacity)(
            *(ctypes.cast(base + i * itemsize, ctypes.POINTER(ctypes.c_int32)) for i in range(capacity))
        )
        self.struct = llama_cpp.llama_batch(
            n_tokens=0,
            token=self.token.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token)),
            embd=None,
            pos=self.pos.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_pos)),
            n_seq_id=self._n_seq_id.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
            seq_id=ctypes.cast(self._seq_ptrs, ctypes.POINTER(ctypes.POINTER(llama_cpp.llama_seq_id))),
            logits=self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        self.n_tokens = 0


class LlamaModel:
    """One loaded GGUF model with one context of ``n_seq`` sequences."""

    def __init__(self, path: Path, config: ContextConfig):
        install_native_logging()
        self.path = path
        self.config = config
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = config.n_gpu_layers
        mparams.main_gpu = config.main_gpu
        if config.tensor_split:  # one share per device llama.cpp may use, zeros after the given ones
            shares = list(config.tensor_split)[: llama_cpp.LLAMA_MAX_DEVICES]
            self._tensor_split = (ctypes.c_float * llama_cpp.LLAMA_MAX_DEVICES)(*shares)
            mparams.tensor_split = self._tensor_split
        # Extra buffer types repack weights for AMX/other kernels; this build's AMX matmul crashes
        # (SIGSEGV in ggml_backend_amx_mul_mat) on CPUs that report AMX, so plain CPU buffers it is.
        mparams.use_extra_bufts = False
        mparams.load_mode = (
            llama_cpp.LLAMA_LOAD_MODE_MMAP if config.use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE
        )
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise EngineError(f"llama.cpp could not load {path.name} (see the worker log)")
        self.ctx: llama_cpp.llama_context_p | None = None
        try:
            self.vocab = llama_cpp.llama_model_get_vocab(self.model)
            self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
            self.ctx = self._new_context(config)
            self.mem = llama_cpp.llama_get_memory(self.ctx)
            self.n_ctx = llama_cpp.llama_n_ctx(self.ctx)
            self.n_ctx_seq = llama_cpp.llama_n_ctx_seq(self.ctx)
            self.eog = np.array(
                [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)],
                dtype=np.int32,
            )
            self._eog_set = frozenset(int(t) for t in self.eog)
            self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
            self.bos = llama_cpp.llama_vocab_bos(self.vocab)
            self.eos = llama_cpp.llama_vocab_eos(self.vocab)
            self._pieces: dict[int, bytes] = {}
            self._logits_views: dict[tuple[int, int], npt.NDArray[np.float32]] = {}
            self._piece_buf = ctypes.create_string_buffer(256)
            self.bos_text = self.token_text(self.bos) if self.bos >= 0 else ""
            self.eos_text = self.token_text(self.eos) if self.eos >= 0 else ""
        except BaseException:
            self.close()
            raise

    def _new_context(self, config: ContextConfig) -> llama_cpp.llama_context_p:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = config.n_ctx
        cparams.n_batch = config.n_batch
        cparams.n_ubatch = config.n_batch
        cparams.n_seq_max = config.n_seq
        cparams.n_threads = config.threads
        cparams.n_threads_batch = config.threads
        cparams.kv_unified = config.kv_unified
        cparams.flash_attn_type = _FLASH_ATTN[config.flash_attn]
        cparams.type_k = cparams.type_v = _KV_TYPES[config.kv_type]
        cparams.no_perf = True
        cparams.embeddings = False
        ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not ctx:
            raise EngineError(
                f"llama.cpp could not create a context of {config.n_ctx} tokens x {config.n_seq} sequences"
            )
        return ctx

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None

    # -- metadata --------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        size = 1 << 10
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self.model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self.model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def ftype(self) -> int:
        return int(llama_cpp.llama_model_ftype(self.model))

    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.model, buf, 256)
        return buf.value.decode("utf-8", "replace")

    def size_bytes(self) -> int:
        return int(llama_cpp.llama_model_size(self.model))

    def token_text(self, token: int) -> str:
        """A token's text with special tokens rendered (e.g. ``<|im_end|>``)."""
        return self.piece(token, special=True).decode("utf-8", "replace")

    # -- vocabulary (any thread) -----------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool | None = None) -> list[int]:
        """Token ids, special tokens parsed; BOS added when the model wants one and the text lacks it."""
        data = text.encode("utf-8")
        if add_bos is None:
            add_bos = self.add_bos and not (self.bos_text and text.startswith(self.bos_text))
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_bos, True)
        if n < 0:
            capacity = -n
            tokens = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_bos, True)
            if n < 0:
                raise EngineError("tokenization failed")
        return list(tokens[:n])

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token (cached; special tokens render empty unless ``special``)."""
        if not special and (cached := self._pieces.get(token)) is not None:
            return cached
        buf = ctypes.create_string_buffer(256) if special else self._piece_buf
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        data = buf.raw[:n]
        if not special:
            self._pieces[token] = data
        return data

    def is_eog(self, token: int) -> bool:
        return token in self._eog_set

    # -- decoding (decode thread only) -----------------------------------------------------

    @property
    def context(self) -> llama_cpp.llama_context_p:
        if not self.ctx:
            raise EngineError("the llama.cpp context is closed")
        return self.ctx

    def decode(self, batch: Batch) -> int:
        batch.struct.n_tokens = batch.n_tokens
        return int(llama_cpp.llama_decode(self.context, batch.struct))

    def logits(self, n_outputs: int) -> npt.NDArray[np.float32]:
        """The output rows of the last decode, in batch order, as a (n_outputs, n_vocab) view."""
        address = ctypes.cast(llama_cpp.llama_get_logits(self.context), ctypes.c_void_p).value
        if not address:
            raise EngineError("llama.cpp returned no logits")
        key = (address, n_outputs)
        view = self._logits_views.get(key)
        if view is None:  # a view per (buffer, rows): as_array's ctypes types cost ~10 us a step
            if len(self._logits_views) > 64:
                self._logits_views.clear()
            floats = (ctypes.c_float * (n_outputs * self.n_vocab)).from_address(address)
            view = self._logits_views[key] = np.frombuffer(floats, dtype=np.float32).reshape(n_outputs, -1)
        return view

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        return bool(llama_cpp.llama_memory_seq_rm(self.mem, seq, p0, p1))

    def seq_cp(self, src: int, dst: int) -> None:
        """Copy all of ``src`` into ``dst`` (whole-sequence copies work with per-slot buffers too)."""
        llama_cpp.llama_memory_seq_cp(self.mem, src, dst, -1, -1)

    def seq_pos_max(self, seq: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self.mem, seq))
