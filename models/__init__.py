"""The mtrec model: features, preprocessing (Transform), the Keras 3 multi-task model, training and export."""

import os

# Keras 3 on the TensorFlow backend: TFX, Transform and the SavedModel export all run on TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
