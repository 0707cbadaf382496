"""The TensorFlow Recommenders multitask tutorial model, as a baseline mtrec can train and export.

This is https://www.tensorflow.org/recommenders/examples/multitask written with tf_keras (Keras 2) and
tensorflow_recommenders, with one deliberate difference: it reads mtrec's *transformed* features (integer
`user_index` / `item_index` from Transform) instead of raw strings, so the tutorial's StringLookup+Embedding
pairs become plain Embedding tables on the indices (which is what a lookup followed by an embedding computes).
Everything else follows the tutorial: 32-dimensional embeddings, a Dense 256 -> 128 -> 1 rating head on the
concatenated embeddings, a Retrieval task whose FactorizedTopK metric streams over the embeddings of every
catalogue item (computed in training too, as in the tutorial), a Ranking task with MSE and RMSE, and the loss
`rating_weight * rating_loss + retrieval_weight * retrieval_loss`. The caller compiles (the tutorial uses
`tf_keras.optimizers.Adagrad(0.1)`) and fits.

The model also offers the interface of mtrec's Keras 3 model (`user_tower`, `item_tower`, `score`, named
outputs), so models.export.ServingModule can wrap and save it with mtrec's serving signatures.

Keras 2 and Keras 3 in one process: TFRS 0.7.7 builds on `tf.keras` and refuses to import unless `tf.keras` is
Keras 2. TensorFlow decides what `tf.keras` is once, on its first use, from TF_USE_LEGACY_KERAS; so this module
sets that variable (if unset) before importing TensorFlow. That is not enough when something already used
`tf.keras` under Keras 3 (importing keras_hub does: tensorflow_text defines a layer on `tf.keras` at import).
Then `tf.keras` stays Keras 3 for the rest of the process, and TFRS is imported against a view of TensorFlow
whose `keras` is tf_keras (see `_import_tfrs`), leaving `tf.keras` itself untouched for everybody else.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # must precede the first use of tf.keras in the process

import sys  # noqa: E402
import types  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from models import features  # noqa: E402

_TFRS = "tensorflow_recommenders"
CLICK_LOGIT = "click_logit"
RATING_LABEL = features.transformed_label(features.RATING_TASK)
# Ratings of 4 and 5 count as clicks; the click logit is the predicted rating minus this threshold.
CLICK_THRESHOLD = 3.5
_CANDIDATE_BATCH = 128  # as the tutorial's `movies.batch(128)`


class _LegacyKerasView(types.ModuleType):
    """A stand-in for a TensorFlow module whose `keras` attribute is tf_keras; everything else is TensorFlow's."""

    def __init__(self, module: types.ModuleType):
        super().__init__(module.__name__, module.__doc__)
        self._module = module

    def __getattr__(self, name: str) -> Any:
        if name == "keras":
            return tf_keras
        return getattr(self._module, name)


def _tf_keras_is_keras_3() -> bool:
    version = getattr(tf.keras, "version", None)  # first use of tf.keras resolves it, from TF_USE_LEGACY_KERAS
    return version is not None and version().startswith("3.")


def _import_tfrs() -> types.ModuleType:
    """Import tensorflow_recommenders on tf_keras, whether or not `tf.keras` was already resolved to Keras 3.

    Why: TFRS reads `tf.keras` both at import (its version check, base classes) and at run time (losses,
    metrics), through the `tf` name in each of its modules. If `tf.keras` is Keras 3 for good, TFRS is imported
    while `tf.keras` briefly points at tf_keras, then every TFRS module's `tf` is replaced by a view whose
    `keras` is tf_keras, so TFRS sees Keras 2 everywhere and the rest of the process keeps Keras 3.
    """
    if _TFRS in sys.modules or not _tf_keras_is_keras_3():
        import tensorflow_recommenders

        return tensorflow_recommenders
    keras_3 = tf.keras
    tf.keras = tf_keras
    try:
        import tensorflow_recommenders
    finally:
        tf.keras = keras_3
    for name, module in list(sys.modules.items()):
        if (name == _TFRS or name.startswith(_TFRS + ".")) and isinstance(getattr(module, "tf", None),
                                                                          types.ModuleType):
            if not isinstance(module.tf, _LegacyKerasView):
                module.tf = _LegacyKerasView(module.tf)
    return tensorflow_recommenders


tfrs = _import_tfrs()


class _CatalogueStreaming(tfrs.layers.factorized_top_k.Streaming):
    """`Streaming(k).index_from_dataset(dataset)` (what FactorizedTopK makes of the tutorial's candidate dataset),
    with the dataset of catalogue item embeddings built from the item indices each time the layer is called.

    Why: a dataset made once, eagerly, is captured by the layer's traced call as an opaque variant tensor, which
    tf.saved_model.save (so models.export) refuses to save; and it cannot be left out, because tf_keras saves a
    trace of every called layer. Built inside the call, the input pipeline is part of the traced graph and
    captures only the index constant and the item embedding table. The computation is the tutorial's:
    `indices.batch(128).map(item_embedding)`, streamed through the top K in every metric update.
    """

    def __init__(self, candidate_indices: Sequence[int], item_embedding: tf_keras.layers.Embedding, k: int):
        super().__init__(k=k)
        self.item_embedding = item_embedding
        self._candidate_indices = tf.constant(list(candidate_indices), tf.int64)

    @property
    def _candidates(self) -> tf.data.Dataset:
        return (tf.data.Dataset.from_tensor_slices(self._candidate_indices)
                .batch(_CANDIDATE_BATCH).map(self.item_embedding))

    @_candidates.setter
    def _candidates(self, value: Any) -> None:
        """Streaming.__init__ clears its index here; this index is always the catalogue, so there is none to set."""


class TFRSMultitaskModel(tfrs.models.Model):
    """The TFRS multitask tutorial model on mtrec's transformed indices, with mtrec's model interface.

    `call` returns mtrec's named outputs (both embeddings, rating, click probability and logit). The tutorial has
    no click head, so the click logit is derived from the rating: `predicted_rating - 3.5` (ratings >= 4 count as
    clicks), and the click probability is its sigmoid. It is a calibrated probability of nothing in particular,
    but it is a monotone function of the predicted rating, which is all a ranking metric such as AUC needs.

    Args:
        num_users: int. Size of the user index space (vocabulary plus OOV buckets).
        num_items: int. Size of the item index space (padding, vocabulary, OOV buckets).
        candidate_indices: sequence of int. The item index of every catalogue item; FactorizedTopK ranks the
            true item among their embeddings.
        rating_weight: float. Weight of the rating loss in the total loss.
        retrieval_weight: float. Weight of the retrieval loss in the total loss.
        embedding_dim: int. Size of the user and item embeddings (32 in the tutorial).
    """

    def __init__(self, num_users: int, num_items: int, candidate_indices: Sequence[int], rating_weight: float,
                 retrieval_weight: float, embedding_dim: int = 32, **kwargs: Any):
        super().__init__(**kwargs)
        # === Layers ===
        self.user_embedding = tf_keras.layers.Embedding(num_users, embedding_dim, name="user_embedding")
        self.item_embedding = tf_keras.layers.Embedding(num_items, embedding_dim, name="item_embedding")
        # Built here, not inside the candidate dataset's map function, where creating variables is not allowed.
        self.user_embedding.build((None,))
        self.item_embedding.build((None,))
        self.rating_model = tf_keras.Sequential([
            tf_keras.layers.Dense(256, activation="relu"),
            tf_keras.layers.Dense(128, activation="relu"),
            tf_keras.layers.Dense(1),
        ], name="rating_model")
        self.rating_task = tfrs.tasks.Ranking(
            loss=tf_keras.losses.MeanSquaredError(), metrics=[tf_keras.metrics.RootMeanSquaredError()])
        ks = (1, 5, 10, 50, 100)  # FactorizedTopK's defaults, as in the tutorial
        self.retrieval_task = tfrs.tasks.Retrieval(metrics=tfrs.metrics.FactorizedTopK(
            candidates=_CatalogueStreaming(candidate_indices, self.item_embedding, k=max(ks)), ks=ks))
        # === Config ===
        self.num_users = num_users
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.rating_weight = float(rating_weight)
        self.retrieval_weight = float(retrieval_weight)

    def user_tower(self, inputs: dict[str, Any], history: Any = None) -> tf.Tensor:
        """(batch, embedding_dim) user embeddings from `inputs[USER_INDEX]`; other keys are ignored."""
        return self.user_embedding(inputs[features.USER_INDEX])

    def history_sequence(self, inputs: dict[str, Any]) -> None:
        """The tutorial model reads no history sequence."""
        return None

    def item_tower(self, inputs: dict[str, Any]) -> tf.Tensor:
        """(batch, embedding_dim) item embeddings from `inputs[ITEM_INDEX]`; other keys are ignored."""
        return self.item_embedding(inputs[features.ITEM_INDEX])

    def score(self, user: tf.Tensor, item: tf.Tensor) -> dict[str, tf.Tensor]:
        """The rating head on (user, item) embedding pairs, and the click score derived from it; each (batch,)."""
        rating = tf.squeeze(self.rating_model(tf.concat([user, item], axis=1)), -1)
        click_logit = rating - CLICK_THRESHOLD
        return {
            CLICK_LOGIT: click_logit,
            features.CLICK_PROBABILITY: tf.sigmoid(click_logit),
            features.RATING_PREDICTION: rating,
        }

    def call(self, inputs: dict[str, Any], training: bool = False) -> dict[str, tf.Tensor]:
        user = self.user_tower(inputs)
        item = self.item_tower(inputs)
        return {features.USER_EMBEDDING: user, features.ITEM_EMBEDDING: item, **self.score(user, item)}

    def compute_loss(self, inputs: dict[str, Any], training: bool = False) -> tf.Tensor:
        """The tutorial's weighted sum; the rating label travels inside `inputs`, as Transform writes it."""
        outputs = self(inputs, training=training)
        rating_loss = self.rating_task(labels=tf.reshape(inputs[RATING_LABEL], (-1, 1)),
                                       predictions=tf.reshape(outputs[features.RATING_PREDICTION], (-1, 1)))
        retrieval_loss = self.retrieval_task(outputs[features.USER_EMBEDDING], outputs[features.ITEM_EMBEDDING])
        return self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss
