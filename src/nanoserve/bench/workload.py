"""Synthetic workloads: prompts of a controlled length and their arrival times.

The server's tokenizer is unknown to the client, so prompts are built from common English words
that are one token each in the usual BPE vocabularies (with their leading space): ``input_len``
words come out close to ``input_len`` tokens. The exact count is the server's ``usage``, which the
report uses. Everything here is a pure function of its arguments and the seed.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

# Common words that are a single token (with a leading space) in GPT-2/Llama/SmolLM-style vocabularies.
WORDS: tuple[str, ...] = tuple(
    """
    the of and to in is was for on that with as by at from his her they this be are have not but or
    had one all their which you were she there would been has when who will more no out so can what
    up said about other into than its time only could new them man some these then two first may any
    like now my such make over our even most me state after also made many before must through back
    years where much your way well down should because each just those people how too little good
    world very still own see men work long get here between both life being under never day same
    another know while last might us great old year off come since against go came right used take
    three house small large light water river city stone green north south window garden music
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request's input: a text (generation) or a batch of texts (embeddings)."""

    texts: tuple[str, ...]
    approx_tokens: int  # words sent; the server's usage has the real count
    max_tokens: int  # output tokens asked for (0 for embeddings)

    @property
    def text(self) -> str:
        return self.texts[0]


def derive_seed(seed: int, *labels: object) -> int:
    """A stable sub-seed for one part of a run (independent of PYTHONHASHSEED)."""
    key = "|".join([str(seed), *map(str, labels)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def random_text(rng: random.Random, num_words: int) -> str:
    return " ".join(rng.choices(WORDS, k=num_words))


def make_prompts(
    num_prompts: int,
    *,
    input_len: int,
    output_len: int,
    seed: int,
    batch_size: int = 1,
) -> list[Prompt]:
    """``num_prompts`` requests, each of ``batch_size`` texts of ``input_len`` words.

    Every text is drawn independently, so requests share no prefix beyond chance and a server's
    prefix cache does not flatter the figures.
    """
    if num_prompts < 1 or input_len < 1 or batch_size < 1 or output_len < 0:
        raise ValueError("num_prompts, input_len and batch_size must be >= 1, output_len >= 0")
    rng = random.Random(seed)
    return [
        Prompt(
            texts=tuple(random_text(rng, input_len) for _ in range(batch_size)),
            approx_tokens=input_len * batch_size,
            max_tokens=output_len,
        )
        for _ in range(num_prompts)
    ]


def arrival_offsets(num_requests: int, request_rate: float, seed: int) -> list[float]:
    """Seconds after the start at which each request arrives.

    ``inf`` sends everything at once; otherwise arrivals are a Poisson process of that rate
    (exponential gaps), the first one at 0.
    """
    if request_rate <= 0 or math.isnan(request_rate):
        raise ValueError(f"request rate must be > 0, got {request_rate}")
    if math.isinf(request_rate):
        return [0.0] * num_requests
    rng = random.Random(seed)
    offsets = [0.0]
    for _ in range(num_requests - 1):
        offsets.append(offsets[-1] + rng.expovariate(request_rate))
    return offsets[:num_requests]
