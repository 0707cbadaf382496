"""MultiTaskRecommender: two towers for retrieval plus ranking heads, trained on a balanced sum of task losses."""

from __future__ import annotations

from typing import Any

import keras
import keras_rs
import numpy as np
import tensorflow as tf

from models import features
from models import tasks as tasks_module
from models.catalogue import ItemCatalogue
from models.distillation import Distillation
from models.ranking import MLP
from models.sequence import TargetAttention
from models.tasks import Task
from models.towers import ItemTower, UserTower


class MultiTaskRecommender(keras.Model):
    """A retrieval task over a user and an item tower, and one ranking head per binary or regression task.

    The ranking heads read [user, item, user * item, attended history, context] (the attended history: with target
    attention, the history weighted by relevance to the candidate; the context: the declared context features;
    optionally through KerasRS FeatureCross layers), pass it
    through the multi-task architecture (models.ranking), then a tower and an output unit per task. `call`
    returns both embeddings and every task's prediction; `score` runs only the ranking part, which is what
    serving's `rank` needs. The towers share the item id table, so the model is saved as a SavedModel
    (models.export), not from its config.

    Args:
        user_tower: UserTower.
        item_tower: ItemTower.
        tasks: list of Task. At most one retrieval task; any number of binary and regression tasks.
        architecture: keras.layers.Layer. Maps the ranking input to one representation per ranking task.
        loss_balancing: keras.layers.Layer. Task name -> loss dict to the training loss (models.loss_balancing).
        tower_units: list of int. Hidden widths of each task's tower.
        feature_cross_layers: int. Number of FeatureCross layers on the ranking input (0: none).
        temperature: float. Softmax temperature of the retrieval task.
        item_log_frequency: array or None. Log share of training events per item index, for the retrieval
            task's logQ correction; None trains without it.
        label_means: dict. Regression task name -> mean training label, the starting bias of its output.
        context_features: FeatureEncoder or None. The declared context features (None: none declared).
        catalogue: ItemCatalogue or None. The catalogue's item content, so history positions are read through the
            item tower; needed by a sequence user tower and target attention, None otherwise.
        target_attention: TargetAttention or None. Attention from the candidate over the history for the ranking
            heads (None: off).
        distillation: Distillation or None. With it, each batch also holds a teacher's outputs
            (models.distillation) and each task the teacher predicts adds its soft loss; None trains on labels alone.
    """

    def __init__(self, user_tower: UserTower, item_tower: ItemTower, tasks: list[Task],
                 architecture: keras.layers.Layer, loss_balancing: keras.layers.Layer, tower_units: list[int],
                 feature_cross_layers: int = 0, temperature: float = 0.1,
                 item_log_frequency: np.ndarray | None = None, label_means: dict[str, float] | None = None,
                 context_features: keras.layers.Layer | None = None, catalogue: ItemCatalogue | None = None,
                 target_attention: TargetAttention | None = None, distillation: Distillation | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.tasks = list(tasks)
        self.ranking_tasks = [task for task in self.tasks if task.type != tasks_module.RETRIEVAL]
        self.retrieval = tasks_module.retrieval_task(self.tasks)
        label_means = label_means or {}
        # === Layers ===
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.context_features = context_features
        self.catalogue = catalogue
        self.target_attention = target_attention
        if catalogue is None and (user_tower.reads_history_sequence or target_attention is not None):
            raise ValueError("A sequence user tower and target attention read the history through the item tower: "
                             "they need the `catalogue`.")
        self.crosses = [keras_rs.layers.FeatureCross(name=f"feature_cross_{i}") for i in range(feature_cross_layers)]
        self.architecture = architecture
        self.loss_balancing = loss_balancing
        self.task_towers = {task.name: MLP(tower_units, name=f"{task.name}_tower") for task in self.ranking_tasks}
        # Heads compute in float32 under mixed precision too: predictions and logits feed losses and serving.
        self.heads = {task.name: keras.layers.Dense(
            1, bias_initializer=keras.initializers.Constant(label_means.get(task.name, 0.0)), dtype="float32",
            name=f"{task.name}_head") for task in self.ranking_tasks}
        self.loss_trackers = {task.name: keras.metrics.Mean(name=f"{task.name}_loss") for task in self.tasks}
        self.soft_loss_trackers = {task.name: keras.metrics.Mean(name=f"{task.name}_soft_loss")
                                   for task in self.tasks} if distillation is not None else {}
        self.aucs = {task.name: keras.metrics.AUC(name=f"{task.name}_auc")
                     for task in self.ranking_tasks if task.type == tasks_module.BINARY}
        self.item_log_frequency = None
        if item_log_frequency is not None:
            self.item_log_frequency = self.add_weight(
                shape=item_log_frequency.shape, initializer=keras.initializers.Constant(item_log_frequency),
                trainable=False, name="item_log_frequency")
        # === Config ===
        self.feature_cross_layers = feature_cross_layers
        self.temperature = temperature
        self.distillation = distillation

    def call(self, inputs: dict[str, Any], training: bool = False) -> dict[str, Any]:
        if self.catalogue is None:
            item, history = self.item_tower(inputs), None
        else:
            # One item tower call over the candidates and the history positions, so a fine-tuned text encoder
            # encodes each distinct text of the batch once (models.text_encoder).
            rows = self._history_rows(inputs)
            both = self.item_tower({name: keras.ops.concatenate(
                [inputs[name], keras.ops.cast(rows[name], inputs[name].dtype)], axis=0) for name in rows})
            batch = tf.shape(inputs[features.ITEM_INDEX])[0]
            item = both[:batch]
            history = self._as_sequence(both[batch:], inputs)
        user = self.user_tower(inputs, history=history)
        return {features.USER_EMBEDDING: user, features.ITEM_EMBEDDING: item,
                **self.score(user, item, self.context(inputs), history)}

    def _history_rows(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The item tower's inputs for every history position, flattened to (batch * length, ...)."""
        return {**self.catalogue(inputs[features.HISTORY_KEYS]),
                features.ITEM_INDEX: keras.ops.reshape(inputs[features.HISTORY_INDICES], (-1,))}

    @staticmethod
    def _as_sequence(vectors: Any, inputs: dict[str, Any]) -> tuple[Any, Any]:
        indices = inputs[features.HISTORY_INDICES]
        return keras.ops.reshape(vectors, (-1, indices.shape[1], vectors.shape[-1])), indices > 0

    def history_sequence(self, inputs: dict[str, Any]) -> tuple[Any, Any] | None:
        """(sequence, mask) of transformed `inputs`: each history position through the item tower (batch, length,
        dim) and false at padding; None when the model reads no history sequence."""
        if self.catalogue is None:
            return None
        return self._as_sequence(self.item_tower(self._history_rows(inputs)), inputs)

    def context(self, inputs: dict[str, Any]) -> Any:
        """The encoded context features of transformed `inputs`; None when none is declared."""
        return self.context_features(inputs) if self.context_features is not None else None

    def score(self, user: Any, item: Any, context: Any = None, history: tuple[Any, Any] | None = None
              ) -> dict[str, Any]:
        """The ranking heads on (user, item) embedding pairs, their context (`context`) and, with target attention,
        the user's history (`history`, see `history_sequence`): each task's prediction (and binary logits)."""
        parts = [user, item, user * item]
        if self.target_attention is not None:
            if history is None:
                raise ValueError("Target attention needs the history sequence (MultiTaskRecommender.history_sequence).")
            parts.append(self.target_attention(item, *history))
        x0 = keras.ops.concatenate([*parts, *([] if context is None else [context])], axis=-1)
        x = x0
        for cross in self.crosses:
            x = cross(x0, x)
        outputs = {}
        for task, hidden in zip(self.ranking_tasks, self.architecture(x), strict=True):
            value = keras.ops.squeeze(self.heads[task.name](self.task_towers[task.name](hidden)), -1)
            if task.type == tasks_module.BINARY:
                outputs[features.logit_name(task.name)] = value
                value = keras.ops.sigmoid(value)
            elif task.label_transform == "log1p":  # the head learns log1p(label); callers get the label's scale
                outputs[features.transformed_output_name(task.name)] = value
                value = keras.ops.expm1(value)
            outputs[task.name] = value
        for task in self.ranking_tasks:  # ESMM: p(task) = p(given) * p(task | given), the head being the latter
            if task.entire_space:
                outputs[task.name] = outputs[task.given] * outputs[task.name]
        return outputs

    def compute_loss(self, x: dict[str, Any] | None = None, y: Any = None, y_pred: dict[str, Any] | None = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        """Labels travel inside `x` (Transform writes them beside the features), so `y` is unused.

        Under a distribution strategy, each task loss is this replica's share of the global batch's loss (see
        models.tasks), and the total is divided by the number of replicas, as Keras's own losses are: the
        gradients Keras sums over the replicas are then those of the global batch."""
        losses = {}
        if self.retrieval is not None:
            item_ids = x[features.ITEM_INDEX]
            weights = (x[features.transformed_label(self.retrieval.name)] if self.retrieval.label
                       else keras.ops.ones_like(item_ids, dtype="float32"))
            log_q = (keras.ops.take(self.item_log_frequency, item_ids)
                     if self.item_log_frequency is not None else None)
            losses[self.retrieval.name] = tasks_module.retrieval_loss(
                y_pred[features.USER_EMBEDDING], y_pred[features.ITEM_EMBEDDING], item_ids, weights,
                self.temperature, log_q)
        for task in self.ranking_tasks:
            labels = x[features.transformed_label(task.name)]
            # A conditioned task's loss (and training AUC) counts only the rows whose given label is 1.
            weights = x[features.transformed_label(task.given)] if task.masked else None
            if task.entire_space:
                losses[task.name] = tasks_module.entire_space_loss(labels, y_pred[task.name])
            elif task.type == tasks_module.BINARY:
                losses[task.name] = tasks_module.binary_loss(labels, y_pred[features.logit_name(task.name)], weights)
            else:
                predictions = y_pred.get(features.transformed_output_name(task.name), y_pred[task.name])
                losses[task.name] = tasks_module.regression_loss(labels, predictions, weights)
            if task.type == tasks_module.BINARY:
                self.aucs[task.name].update_state(labels, y_pred[task.name], sample_weight=weights)
        for name, loss in losses.items():
            self.loss_trackers[name].update_state(loss)
        if self.distillation is not None:
            losses = self._with_soft_losses(losses, x, y_pred)
        total = self.loss_balancing(losses)
        total = total + sum(self.losses) if self.losses else total
        return total / tf.distribute.get_strategy().num_replicas_in_sync

    def distilled_tasks(self, teacher_outputs: Any) -> list[Task]:
        """The tasks that learn from a teacher with outputs named `teacher_outputs`: a ranking task the teacher
        predicts (by name), retrieval when the teacher has user and item embeddings."""
        names = set(teacher_outputs)
        embeddings = {features.USER_EMBEDDING, features.ITEM_EMBEDDING} <= names
        return [task for task in self.tasks
                if (task.type == tasks_module.RETRIEVAL and embeddings) or (task in self.ranking_tasks
                                                                            and task.name in names)]

    def soft_losses(self, x: dict[str, Any], y_pred: dict[str, Any]) -> dict[str, Any]:
        """Task name -> its soft loss against the teacher's outputs in `x` (models.distillation), for each task the
        teacher's outputs teach (`distilled_tasks`)."""
        teacher = {name[len(features.TEACHER_PREFIX):]: value for name, value in x.items()
                   if name.startswith(features.TEACHER_PREFIX)}
        temperature = self.distillation.temperature
        soft = {}
        for task in self.distilled_tasks(teacher):
            if task.type == tasks_module.RETRIEVAL:
                soft[task.name] = tasks_module.soft_retrieval_loss(
                    y_pred[features.USER_EMBEDDING], y_pred[features.ITEM_EMBEDDING],
                    teacher[features.USER_EMBEDDING], teacher[features.ITEM_EMBEDDING], self.temperature, temperature)
            elif task.entire_space:
                soft[task.name] = tasks_module.entire_space_loss(teacher[task.name], y_pred[task.name])
            elif task.type == tasks_module.BINARY:
                soft[task.name] = tasks_module.soft_binary_loss(
                    teacher[task.name], y_pred[features.logit_name(task.name)], temperature)
            elif features.transformed_output_name(task.name) in y_pred:  # the head learns log1p(label)
                soft[task.name] = tasks_module.regression_loss(
                    keras.ops.log1p(keras.ops.maximum(teacher[task.name], 0.0)),
                    y_pred[features.transformed_output_name(task.name)])
            else:
                soft[task.name] = tasks_module.regression_loss(teacher[task.name], y_pred[task.name])
        return soft

    def _with_soft_losses(self, losses: dict[str, Any], x: dict[str, Any], y_pred: dict[str, Any]) -> dict[str, Any]:
        """Each task's loss mixed with its soft loss by the distillation weights; a task without one keeps its own."""
        soft = self.soft_losses(x, y_pred)
        for name, loss in soft.items():
            self.soft_loss_trackers[name].update_state(loss)
        return {name: (self.distillation.hard_weight * loss + self.distillation.soft_weight * soft[name]
                       if name in soft else loss) for name, loss in losses.items()}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [*super().metrics, *self.loss_trackers.values(), *self.soft_loss_trackers.values(),
                *self.aucs.values()]
