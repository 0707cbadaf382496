"""The curated, checked-in schema of mtrec's examples, and the drift and skew comparators a run adds to it."""

from __future__ import annotations

import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
SCHEMA_FILE = os.path.join(SCHEMA_DIR, "schema.pbtxt")


def with_comparators(schema_text: str, drift: dict[str, float], skew: dict[str, float]) -> str:
    """The schema with a drift and a skew comparator on each named feature.

    Categorical features (strings, categorical ints) compare value frequencies by L-infinity distance; numeric
    ones by approximate Jensen-Shannon divergence, the measures TFDV offers for each kind.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(schema_text, schema_pb2.Schema())
    by_name = {feature.name: feature for feature in schema.feature}
    for comparators, field in ((drift, "drift_comparator"), (skew, "skew_comparator")):
        for name, threshold in comparators.items():
            if name not in by_name:
                raise KeyError(f"feature {name!r} is not in the schema {SCHEMA_FILE}")
            feature = by_name[name]
            comparator = getattr(feature, field)
            numeric = feature.type == schema_pb2.FLOAT or (
                feature.type == schema_pb2.INT and not feature.int_domain.is_categorical)
            if numeric:
                comparator.jensen_shannon_divergence.threshold = threshold
            else:
                comparator.infinity_norm.threshold = threshold
    return text_format.MessageToString(schema)
