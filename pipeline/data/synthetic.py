"""A deterministic synthetic dataset in the CSV contract, with real latent structure for models to learn.

Every item belongs to one topic, and its title, description and categories are written from that topic's
words, so the text carries the signal. Every user has a taste over topics. Clicks and ratings depend on the
user's taste for the item's topic plus the item's quality, so ids, history and text all help predict them. A
purchase follows some clicks (about 2% of the events), more often the stronger the affinity and the lower the
price: a sparse post-click label. A share of the catalogue never appears in any event: cold items, recommendable
only through their text. The rest are released over time: some are out when the log starts, the others come
out at times spread over it, and no event happens on an item before its release, so the latest events (a time
split's eval split) include items that are new at that point, unseen in any earlier event.

The declared features (`declared_features`) carry signal too: a user's age group favours two topics and their
tenure adds to every click (users.csv; a tenure may be missing, empty or the sentinel -1), the event's device and
hour of day shift the click (a context column and the timestamp), an item's price lowers purchases (items.csv).
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from components.example_gen import input_contract
from models import features
from models.features import Feature

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
# Declared features: each age group's favoured topics, each device's click shift, the evening hours' shift.
AGE_GROUPS = {"18-24": ("music", "sports"), "25-34": ("travel", "cooking"), "35-49": ("finance", "garden"),
              "50+": ("history", "garden")}
DEVICES = {"mobile": 0.4, "desktop": 0.0, "tv": -0.6}
DEVICE_SHARES = (0.6, 0.3, 0.1)
EVENING_HOURS = range(18, 24)
AGE_GROUP, TENURE_DAYS, PRICE, DEVICE, HOUR = "age_group", "tenure_days", "price", "device", "hour"
MISSING_TENURE = -1.0


def declared_features() -> list[Feature]:
    """The features the generated data declares: two user features, an item feature and two context ones."""
    return [Feature(AGE_GROUP, features.USERS_SOURCE, features.CATEGORICAL),
            Feature(TENURE_DAYS, features.USERS_SOURCE, features.NUMERIC, normalization=features.LOG1P,
                    missing_values=[MISSING_TENURE]),
            Feature(PRICE, features.ITEMS_SOURCE, features.NUMERIC, normalization=features.QUANTILES, buckets=8),
            Feature(DEVICE, features.EVENTS_SOURCE, features.CATEGORICAL),
            Feature(HOUR, features.EVENTS_SOURCE, features.TIMESTAMP_PART, part="hour")]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the generated data. The defaults make a dataset that trains in minutes on a CPU."""

    num_users: int = 400
    num_items: int = 300
    events_per_user: int = 30
    cold_item_fraction: float = 0.1
    # The share of the items that do appear which are released during the log (the rest are out at its start).
    new_item_fraction: float = 0.5
    seed: int = 7


def _text(rng: np.random.Generator, topic: str, words: int) -> str:
    vocabulary = TOPICS[topic]
    chosen = [str(w) for w in rng.choice(vocabulary, size=words)]
    for position in rng.choice(words, size=max(1, words // 3), replace=False):
        chosen.insert(int(position), str(rng.choice(FILLER)))
    return " ".join(chosen)


def _draw(rng: np.random.Generator, topic_counts: np.ndarray, topic_weights: np.ndarray, size: int,
          available: np.ndarray | None = None) -> np.ndarray:
    """`size` positions drawn exactly as `rng.choice(len(topic_counts), size, p=w / w.sum())` draws them, where w[j]
    is the weight of position j's topic and `topic_counts[j]` counts each topic over positions 0..j. `available`:
    per draw, how many leading positions it may pick from (default all), e.g. the items released by then.

    A binary search over the cumulative weights (`topic_counts @ topic_weights`, row by row) costs O(size log n)
    per user instead of rng.choice's O(n); with 10^5 users and items that is seconds instead of an hour. The
    same uniforms pick the same positions as rng.choice."""
    last = np.full(size, len(topic_counts) - 1) if available is None else np.asarray(available) - 1
    targets = rng.random(size) * (topic_counts[last] @ topic_weights)
    low, high = np.zeros(size, np.int64), last
    while np.any(low < high):  # the first position whose cumulative weight exceeds the target
        middle = (low + high) // 2
        above = topic_counts[middle] @ topic_weights > targets
        low, high = np.where(above, low, middle + 1), np.where(above, middle, high)
    return low


def generate(output_dir: str, config: SyntheticConfig = SyntheticConfig()) -> tuple[str, str, str]:
    """Writes events.csv, items.csv and users.csv into `output_dir`; returns their paths. Same config, same bytes."""
    if not 0 <= config.new_item_fraction < 1:
        raise ValueError(f"new_item_fraction: must be in [0, 1) (some items must be out when the log starts), "
                         f"got {config.new_item_fraction}")
    rng = np.random.default_rng(config.seed)
    # The declared features draw from streams of their own, so adding one leaves the others' draws as they were.
    feature_rng = np.random.default_rng([config.seed, 2])
    topics = sorted(TOPICS)
    os.makedirs(output_dir, exist_ok=True)

    item_topic = rng.integers(len(topics), size=config.num_items)
    item_quality = rng.normal(0.0, 0.5, size=config.num_items)
    item_price = np.round(np.exp(feature_rng.normal(3.0, 0.8, size=config.num_items)), 2)
    items_path = os.path.join(output_dir, input_contract.ITEMS_FILE)
    with open(items_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*features.ITEM_COLUMNS, PRICE])
        for item in range(config.num_items):
            topic = topics[item_topic[item]]
            title = _text(rng, topic, 3).title()
            description = _text(rng, topic, 12) + "."
            categories = features.CATEGORY_SEPARATOR.join([topic, f"{topic}-{rng.integers(3)}"])
            writer.writerow([f"item_{item:05d}", title, description, categories, item_price[item]])

    ages = list(AGE_GROUPS)
    user_age = feature_rng.integers(len(ages), size=config.num_users)
    user_tenure = np.round(np.exp(feature_rng.normal(5.0, 1.2, size=config.num_users)))
    tenure_fault = feature_rng.random(config.num_users)  # 5% empty, 5% the sentinel
    users_path = os.path.join(output_dir, features.USERS_FILE)
    with open(users_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([features.USER_ID, AGE_GROUP, TENURE_DAYS])
        for user in range(config.num_users):
            tenure = "" if tenure_fault[user] < 0.05 else (
                int(MISSING_TENURE) if tenure_fault[user] < 0.1 else int(user_tenure[user]))
            writer.writerow([f"user_{user:05d}", ages[user_age[user]], tenure])
    favoured = np.array([[topic in AGE_GROUPS[age] for topic in topics] for age in ages], np.float64)

    num_cold = int(round(config.cold_item_fraction * config.num_items))
    # In release order (a random one), so the items out at any time are a prefix of it.
    warm_items = rng.permutation(config.num_items)[num_cold:]
    start, span = 1_600_000_000, 180 * 86_400
    # Release times: the first items are out at the start, the others spread over the log.
    num_new = int(round(config.new_item_fraction * len(warm_items)))
    release = np.sort(np.concatenate([np.zeros(len(warm_items) - num_new, np.int64),
                                      rng.integers(0, span, size=num_new)]))
    # Topics seen so far along warm_items: the exposure distribution's cumulative sum is this times a user's
    # per-topic weights, so a user's draw never touches the whole catalogue.
    topic_counts = np.cumsum(np.eye(len(topics), dtype=np.int64)[item_topic[warm_items]], axis=0)
    # Tastes are peaked: most users care about two or three topics.
    tastes = rng.dirichlet(np.full(len(topics), 0.3), size=config.num_users)
    # Purchases draw from a stream of their own, so the other columns are what they were before purchases existed.
    purchase_rng = np.random.default_rng([config.seed, 1])
    devices = list(DEVICES)
    events_path = os.path.join(output_dir, input_contract.EVENTS_FILE)
    with open(events_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*features.DEFAULT_EVENT_COLUMNS, features.PURCHASED, DEVICE])
        for user in range(config.num_users):
            taste = tastes[user]
            # Users mostly see items of topics they like (exposure), and sometimes anything.
            count = int(rng.integers(config.events_per_user // 2, config.events_per_user * 3 // 2 + 1))
            offsets = np.sort(rng.integers(0, span, size=count))
            # Only items released by the event's time can be shown.
            released = np.searchsorted(release, offsets, side="right")
            shown = warm_items[_draw(rng, topic_counts, taste + 0.02, count, released)]
            times = start + offsets
            device = feature_rng.choice(len(devices), size=count, p=DEVICE_SHARES)
            user_shift = 0.1 * np.log1p(user_tenure[user]) - 0.5
            for item, timestamp, on in zip(shown, times, device, strict=True):
                context_shift = DEVICES[devices[on]] + (0.3 if (timestamp // 3600) % 24 in EVENING_HOURS else 0.0)
                affinity = (6.0 * taste[item_topic[item]] - 1.5 + item_quality[item]
                            + 0.8 * favoured[user_age[user], item_topic[item]] + user_shift + context_shift)
                clicked = int(rng.random() < 1.0 / (1.0 + np.exp(-affinity)))
                rating = float(np.clip(np.round(3.0 + 1.5 * np.tanh(affinity) + rng.normal(0, 0.5)), 1, 5))
                purchase_logit = 1.2 * affinity - 6.6 - 0.8 * (np.log(item_price[item]) - 3.0)
                purchased = int(clicked and purchase_rng.random() < 1.0 / (1.0 + np.exp(-purchase_logit)))
                writer.writerow([f"user_{user:05d}", f"item_{item:05d}", int(timestamp), clicked, rating, purchased,
                                 devices[on]])
    return events_path, items_path, users_path
