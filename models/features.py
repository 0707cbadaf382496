"""The one place that names every feature: raw columns, labels, transformed keys and model inputs.

Transform, Trainer, export, evaluation and serving import these names; no other module spells one.
"""

from __future__ import annotations

# === Raw input columns (the CSV contract) ===
USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
CLICKED = "clicked"
RATING = "rating"
TITLE = "title"
DESCRIPTION = "description"
CATEGORIES = "categories"

EVENT_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP, CLICKED, RATING)
ITEM_COLUMNS = (ITEM_ID, TITLE, DESCRIPTION, CATEGORIES)
REQUIRED_EVENT_COLUMNS = EVENT_COLUMNS
REQUIRED_ITEM_COLUMNS = (ITEM_ID, TITLE)
CATEGORY_SEPARATOR = "|"

# === Added by ExampleGen ===
HISTORY = "history"  # the user's previous item ids, most recent first, strictly before the event's timestamp
# Evaluation slices, from counts over the train split; the model never reads them and serving never needs them.
ITEM_POPULARITY = "item_popularity"  # cold (no train events), rare, medium, popular
USER_ACTIVITY = "user_activity"  # new (no train events), light, regular, heavy
SLICE_FEATURES = (ITEM_POPULARITY, USER_ACTIVITY)

# === The default tasks (the configuration may declare others): name -> label column ===
RETRIEVAL_TASK = "retrieval"
CLICK_TASK = "click"
RATING_TASK = "rating"
LABEL_KEYS = {CLICK_TASK: CLICKED, RATING_TASK: RATING}
LABEL_COLUMNS = (CLICKED, RATING)  # the event columns that carry labels

# === Transformed features (model inputs) ===
USER_INDEX = "user_index"
ITEM_INDEX = "item_index"
HISTORY_INDICES = "history_indices"  # 0 = padding, so the model can mask it
CATEGORY_INDICES = "category_indices"  # 0 = padding
TEXT_TOKEN_IDS = "text_token_ids"
TEXT_PADDING_MASK = "text_padding_mask"
USER_FEATURES = (USER_INDEX, HISTORY_INDICES)
ITEM_FEATURES = (ITEM_INDEX, CATEGORY_INDICES, TEXT_TOKEN_IDS, TEXT_PADDING_MASK)

# === Vocabularies written by Transform ===
USER_VOCABULARY = "user_id_vocabulary"
ITEM_VOCABULARY = "item_id_vocabulary"
CATEGORY_VOCABULARY = "category_vocabulary"

# === Serving signatures and their JSON-friendly inputs and outputs (see models/export.py) ===
SERVING_SIGNATURE = "serving_default"
RANK_SIGNATURE = "rank"
RETRIEVE_SIGNATURE = "retrieve"
USER_EMBEDDING_SIGNATURE = "user_embedding"
ITEM_EMBEDDING_SIGNATURE = "item_embedding"
EXAMPLES_INPUT = "examples"
ITEM_IDS = "item_ids"
K = "k"
EXCLUDE_HISTORY = "exclude_history"
SCORES = "scores"

# === Model outputs (also the TFMA output names) ===
USER_EMBEDDING = "user_embedding"
ITEM_EMBEDDING = "item_embedding"
CLICK_PROBABILITY = CLICK_TASK
RATING_PREDICTION = RATING_TASK


LOGIT_SUFFIX = "_logit"


def logit_name(task: str) -> str:
    """Model output key of a binary task's logit; its probability is under the task's own name. Not served."""
    return f"{task}{LOGIT_SUFFIX}"


def transformed_label(task: str) -> str:
    """Key of a task's label after Transform."""
    return f"{task}_label"
