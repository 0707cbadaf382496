"""A deterministic synthetic dataset in the CSV contract, with real latent structure for models to learn.

Every item belongs to one topic, and its title, description and categories are written from that topic's
words, so the text carries the signal. Every user has a taste over topics. Clicks and ratings depend on the
user's taste for the item's topic plus the item's quality, so ids, history and text all help predict them.
A share of the catalogue never appears in any event: cold items, recommendable only through their text.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from components.example_gen import input_contract
from models import features

TOPICS = {
    "space": ["galaxy", "rocket", "planet", "orbit", "astronaut", "comet", "telescope", "nebula"],
    "cooking": ["recipe", "kitchen", "pasta", "spice", "bread", "oven", "flavor", "dessert"],
    "music": ["guitar", "melody", "concert", "piano", "rhythm", "album", "singer", "drums"],
    "sports": ["football", "tennis", "stadium", "coach", "marathon", "goal", "team", "league"],
    "garden": ["flower", "seed", "soil", "tomato", "garden", "harvest", "rose", "compost"],
    "history": ["empire", "castle", "ancient", "war", "king", "museum", "medieval", "treaty"],
    "travel": ["island", "beach", "mountain", "journey", "hotel", "passport", "river", "village"],
    "finance": ["market", "stock", "budget", "invest", "bank", "money", "profit", "savings"],
}
FILLER = ["the", "a", "guide", "story", "new", "complete", "little", "great", "life", "world", "of", "and"]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the generated data. The defaults make a dataset that trains in minutes on a CPU."""

    num_users: int = 400
    num_items: int = 300
    events_per_user: int = 30
    cold_item_fraction: float = 0.1
    seed: int = 7


def _text(rng: np.random.Generator, topic: str, words: int) -> str:
    vocabulary = TOPICS[topic]
    chosen = [str(w) for w in rng.choice(vocabulary, size=words)]
    for position in rng.choice(words, size=max(1, words // 3), replace=False):
        chosen.insert(int(position), str(rng.choice(FILLER)))
    return " ".join(chosen)


def generate(output_dir: str, config: SyntheticConfig = SyntheticConfig()) -> tuple[str, str]:
    """Writes events.csv and items.csv into `output_dir`; returns their paths. Same config, same bytes."""
    rng = np.random.default_rng(config.seed)
    topics = sorted(TOPICS)
    os.makedirs(output_dir, exist_ok=True)

    item_topic = rng.integers(len(topics), size=config.num_items)
    item_quality = rng.normal(0.0, 0.5, size=config.num_items)
    items_path = os.path.join(output_dir, input_contract.ITEMS_FILE)
    with open(items_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(features.ITEM_COLUMNS)
        for item in range(config.num_items):
            topic = topics[item_topic[item]]
            title = _text(rng, topic, 3).title()
            description = _text(rng, topic, 12) + "."
            categories = features.CATEGORY_SEPARATOR.join([topic, f"{topic}-{rng.integers(3)}"])
            writer.writerow([f"item_{item:05d}", title, description, categories])

    num_cold = int(round(config.cold_item_fraction * config.num_items))
    warm_items = np.sort(rng.permutation(config.num_items)[num_cold:])
    # Tastes are peaked: most users care about two or three topics.
    tastes = rng.dirichlet(np.full(len(topics), 0.3), size=config.num_users)
    events_path = os.path.join(output_dir, input_contract.EVENTS_FILE)
    start = 1_600_000_000
    with open(events_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(features.EVENT_COLUMNS)
        for user in range(config.num_users):
            taste = tastes[user]
            # Users mostly see items of topics they like (exposure), and sometimes anything.
            exposure = taste[item_topic[warm_items]] + 0.02
            exposure /= exposure.sum()
            count = int(rng.integers(config.events_per_user // 2, config.events_per_user * 3 // 2 + 1))
            shown = rng.choice(warm_items, size=count, replace=True, p=exposure)
            times = start + np.sort(rng.integers(0, 180 * 86_400, size=count))
            for item, timestamp in zip(shown, times, strict=True):
                affinity = 6.0 * taste[item_topic[item]] - 1.5 + item_quality[item]
                clicked = int(rng.random() < 1.0 / (1.0 + np.exp(-affinity)))
                rating = float(np.clip(np.round(3.0 + 1.5 * np.tanh(affinity) + rng.normal(0, 0.5)), 1, 5))
                writer.writerow([f"user_{user:05d}", f"item_{item:05d}", int(timestamp), clicked, rating])
    return events_path, items_path
