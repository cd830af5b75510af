"""Which replica serves a request: a pure decision over a snapshot of the model's replicas.

In order:

1. **Session affinity.** A request with a session (the ``X-Session-Id`` header, else the OpenAI
   ``user`` field) goes to the ready replica that rendezvous hashing gives its session: the
   replica with the highest ``hash(session, replica)``. Adding or removing a replica moves only
   the sessions that hashed to it.
2. **Prefix affinity.** The request's prompt, as a chain of block hashes (``prefix_blocks``: each
   block's hash covers every block before it), is matched against the blocks each replica was
   sent recently. The replica with the longest match gets it when the match is at least
   ``min_match_blocks`` long (so a short shared system prompt alone pins nothing) and that
   replica is not busier than the least busy one by more than ``max_imbalance`` requests (then
   load wins). Its KV cache probably still holds that prefix: the prompt is not computed again.
3. **Least outstanding requests, power of two choices.** Two ready replicas drawn at random, the
   one with fewer requests in flight or queued wins; with two replicas that is simply the less
   busy one.

References: vllm-router's cache_aware policy and Ray Serve's PrefixCacheAffinityRouter.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

BLOCK_CHARS = 128  # about 32 tokens of English text
MIN_MATCH_BLOCKS = 4  # ~128 tokens must match before a prefix pins a request
MAX_IMBALANCE = 4  # requests; beyond this load wins over the cached prefix
MAX_BLOCKS = 32  # the first ~4 K characters (~1 K tokens) tell shared prefixes apart


@dataclass(frozen=True, slots=True)
class Candidate:
    replica: int  # index in the model's group
    outstanding: int  # in flight + queued at this replica


@dataclass(frozen=True, slots=True)
class Affinity:
    """What a request says about where it would be served best."""

    session: str | None = None
    prefix_blocks: tuple[int, ...] = ()


NO_AFFINITY = Affinity()


def prefix_blocks(text: str, block_chars: int = BLOCK_CHARS, limit: int = MAX_BLOCKS) -> tuple[int, ...]:
    """Chained hashes of the whole ``block_chars`` blocks of ``text`` (a partial last block is left
    out: it would match nothing next time). Python's own string hash: the table lives in this
    process only, and it is several times cheaper than a cryptographic digest."""
    blocks = []
    digest = 0
    for start in range(0, min(len(text), block_chars * limit) - block_chars + 1, block_chars):
        digest = hash((digest, text[start : start + block_chars]))
        blocks.append(digest)
    return tuple(blocks)


def _rendezvous(session: str, replica: int) -> bytes:
    return hashlib.blake2b(f"{session}\0{replica}".encode(), digest_size=8).digest()


def matched_blocks(blocks: Sequence[int], seen: Mapping[int, int], replica: int) -> int:
    """How many leading blocks of ``blocks`` were last sent to ``replica`` (``seen``: block → replica)."""
    count = 0
    for block in blocks:
        if seen.get(block) != replica:
            break
        count += 1
    return count


def choose(
    candidates: Sequence[Candidate],
    affinity: Affinity = NO_AFFINITY,
    seen: Mapping[int, int] | None = None,
    *,
    rng: random.Random | None = None,
    min_match_blocks: int = MIN_MATCH_BLOCKS,
    max_imbalance: int = MAX_IMBALANCE,
) -> int | None:
    """The replica index to serve the request, or None if no replica is ready."""
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0].replica
    if affinity.session:
        session = affinity.session
        return max(candidates, key=lambda c: _rendezvous(session, c.replica)).replica
    least = min(c.outstanding for c in candidates)
    if seen and affinity.prefix_blocks:
        best = max(
            candidates,
            key=lambda c: (matched_blocks(affinity.prefix_blocks, seen, c.replica), -c.outstanding),
        )
        matched = matched_blocks(affinity.prefix_blocks, seen, best.replica)
        if matched >= min_match_blocks and best.outstanding - least <= max_imbalance:
            return best.replica
    a, b = (rng or random).sample(list(candidates), 2)
    return (a if a.outstanding <= b.outstanding else b).replica


class PrefixTable:
    """Which replica each prompt block was last sent to (bounded, least recently used out)."""

    def __init__(self, capacity: int = 65536):
        self.capacity = capacity
        self._owner: OrderedDict[int, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._owner)

    @property
    def seen(self) -> Mapping[int, int]:
        return self._owner

    def record(self, blocks: Iterable[int], replica: int) -> None:
        for block in blocks:
            self._owner[block] = replica
            self._owner.move_to_end(block)
        while len(self._owner) > self.capacity:
            self._owner.popitem(last=False)

    def forget(self, replica: int) -> None:
        """A replica was stopped: its cache is gone."""
        for block in [b for b, r in self._owner.items() if r == replica]:
            del self._owner[block]
