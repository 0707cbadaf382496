"""Serving for development: a local server with TF Serving's REST API, and its client."""

DEFAULT_MODEL_NAME = "mtrec"
DEFAULT_MAX_BATCH_SIZE = 1024
