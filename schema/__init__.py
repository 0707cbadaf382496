"""The curated, checked-in schema of mtrec's examples, and the drift and skew comparators a run adds to it."""

from __future__ import annotations

import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
SCHEMA_FILE = os.path.join(SCHEMA_DIR, "schema.pbtxt")


def with_labels(schema_text: str, labels: dict[str, str], ranges: dict[str, tuple[float, float]]) -> str:
    """The schema with a feature for each label column: present in every example, one value; a binary label an
    int in {0, 1} (categorical, so drift compares its frequencies), any other a float, not below 0 where it must
    not be negative, and within `ranges[column]` where one is declared."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from models import features

    schema = text_format.Parse(schema_text, schema_pb2.Schema())
    for column, kind in labels.items():
        feature = schema.feature.add(name=column)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add(size=1)
        if kind == features.BINARY_LABEL:
            feature.type = schema_pb2.INT
            feature.int_domain.CopyFrom(schema_pb2.IntDomain(min=0, max=1, is_categorical=True))
            continue
        feature.type = schema_pb2.FLOAT
        low, high = ranges.get(column, (None, None))
        if kind == features.NON_NEGATIVE_LABEL:
            low = max(low or 0.0, 0.0)
        if low is not None:
            feature.float_domain.min = low
        if high is not None:
            feature.float_domain.max = high
    return text_format.MessageToString(schema)


def with_features(schema_text: str, declared: list) -> str:
    """The schema with a feature for each declared column (models.features.Feature): strings for categorical
    ones, floats for numeric ones (not below 0 under log1p); none, one, or (multi-categorical) several values,
    since a missing value is written as none. Timestamp parts add nothing: they are computed from `timestamp`."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from models import features

    schema = text_format.Parse(schema_text, schema_pb2.Schema())
    for declared_feature in declared:
        if not declared_feature.column:
            continue
        feature = schema.feature.add(name=declared_feature.name)
        feature.presence.min_count = 0
        feature.value_count.min = 0
        if declared_feature.type != features.MULTI_CATEGORICAL:
            feature.value_count.max = 1
        if declared_feature.type == features.NUMERIC:
            feature.type = schema_pb2.FLOAT
            if declared_feature.normalization == features.LOG1P:
                feature.float_domain.min = 0.0
        else:
            feature.type = schema_pb2.BYTES
    return text_format.MessageToString(schema)


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
