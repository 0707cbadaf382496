"""MultiTaskRecommender: two towers for retrieval plus click and rating heads, trained on a weighted loss sum."""

from __future__ import annotations

from typing import Any

import keras

from models import features, tasks
from models.towers import ItemTower, UserTower

TASKS = (features.RETRIEVAL_TASK, features.CLICK_TASK, features.RATING_TASK)
CLICK_LOGIT = "click_logit"


class MultiTaskRecommender(keras.Model):
    """A retrieval task over a user and an item tower, and ranking heads on the pair.

    `call` returns named outputs: both embeddings, the click logit and probability, and the rating. The loss
    is an explicit weighted sum of the task losses; a weight of zero removes a task from training. The towers
    share the item id table, so the model is saved as a SavedModel (models.export), not from its config.

    Args:
        user_tower: UserTower.
        item_tower: ItemTower.
        task_weights: dict. Loss weight per task name in `TASKS`.
        hidden_dim: int. Width of the ranking heads' hidden layer.
        temperature: float. Softmax temperature of the retrieval task.
    """

    def __init__(self, user_tower: UserTower, item_tower: ItemTower, task_weights: dict[str, float],
                 hidden_dim: int = 64, temperature: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        unknown = sorted(set(task_weights) - set(TASKS))
        if unknown:
            raise ValueError(f"`task_weights` names unknown tasks {unknown}; known: {list(TASKS)}. "
                             f"Received: `task_weights` = {task_weights}")
        # === Layers ===
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.ranking_hidden = keras.layers.Dense(hidden_dim, activation="relu", name="ranking_hidden")
        self.click_head = keras.layers.Dense(1, name="click_head")
        self.rating_head = keras.layers.Dense(1, name="rating_head")
        self.loss_trackers = {task: keras.metrics.Mean(name=f"{task}_loss") for task in TASKS}
        self.click_auc = keras.metrics.AUC(name="click_auc")
        # === Config ===
        self.task_weights = {task: float(task_weights.get(task, 0.0)) for task in TASKS}
        self.hidden_dim = hidden_dim
        self.temperature = temperature

    def call(self, inputs: dict[str, Any], training: bool = False) -> dict[str, Any]:
        user = self.user_tower(inputs)
        item = self.item_tower(inputs)
        return {features.USER_EMBEDDING: user, features.ITEM_EMBEDDING: item, **self.score(user, item)}

    def score(self, user: Any, item: Any) -> dict[str, Any]:
        """The ranking heads on (user, item) embedding pairs; serving ranks candidates with this alone."""
        hidden = self.ranking_hidden(keras.ops.concatenate([user, item, user * item], axis=-1))
        click_logit = keras.ops.squeeze(self.click_head(hidden), -1)
        return {
            CLICK_LOGIT: click_logit,
            features.CLICK_PROBABILITY: keras.ops.sigmoid(click_logit),
            features.RATING_PREDICTION: keras.ops.squeeze(self.rating_head(hidden), -1),
        }

    def compute_loss(self, x: dict[str, Any] | None = None, y: Any = None, y_pred: dict[str, Any] | None = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        """Labels travel inside `x` (Transform writes them beside the features), so `y` is unused."""
        clicks = x[features.transformed_label(features.CLICK_TASK)]
        losses = {
            features.RETRIEVAL_TASK: tasks.retrieval_loss(
                y_pred[features.USER_EMBEDDING], y_pred[features.ITEM_EMBEDDING], x[features.ITEM_INDEX], clicks,
                self.temperature),
            features.CLICK_TASK: tasks.click_loss(clicks, y_pred[CLICK_LOGIT]),
            features.RATING_TASK: tasks.rating_loss(
                x[features.transformed_label(features.RATING_TASK)], y_pred[features.RATING_PREDICTION]),
        }
        for task, loss in losses.items():
            self.loss_trackers[task].update_state(loss)
        self.click_auc.update_state(clicks, y_pred[features.CLICK_PROBABILITY])
        total = sum(self.task_weights[task] * loss for task, loss in losses.items())
        return total + sum(self.losses) if self.losses else total

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [*super().metrics, *self.loss_trackers.values(), self.click_auc]
