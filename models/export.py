"""The serving SavedModel: serialized raw tf.Examples in, every task's output out, Transform graph inside.

A `tf.Module` holds the Keras 3 model and Transform's layer, so TF Serving and TFMA run the very preprocessing
that training saw. Loading the SavedModel needs `import tensorflow_text` first (its WordPiece ops).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models.model import MultiTaskRecommender

SERVING_SIGNATURE = "serving_default"
EXAMPLES_INPUT = "examples"
SERVING_OUTPUTS = (features.CLICK_PROBABILITY, features.RATING_PREDICTION, features.USER_EMBEDDING,
                   features.ITEM_EMBEDDING)


def raw_serving_spec(tft_output: tft.TFTransformOutput) -> dict[str, Any]:
    """The raw feature spec a request must follow: the schema's features minus the labels."""
    spec = tft_output.raw_feature_spec()
    for label in features.LABEL_KEYS.values():
        spec.pop(label)
    return spec


class ServingModule(tf.Module):
    """Parses tf.Examples, applies the Transform graph and the model; returns the serving outputs."""

    def __init__(self, model: MultiTaskRecommender, tft_output: tft.TFTransformOutput):
        super().__init__()
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self._raw_spec = raw_serving_spec(tft_output)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = self.tft_layer(tf.io.parse_example(examples, self._raw_spec))
        outputs = self.model(transformed, training=False)
        return {name: outputs[name] for name in SERVING_OUTPUTS}


def save_serving_model(model: MultiTaskRecommender, tft_output: tft.TFTransformOutput, export_dir: str) -> None:
    module = ServingModule(model, tft_output)
    tf.saved_model.save(module, export_dir, signatures={SERVING_SIGNATURE: module.serve_examples})
