"""Warm start: id tables carry their rows by id string across reordered, grown and shrunk vocabularies; other
weights carry by key and shape; what cannot carry is named; a missing or foreign state is refused.

The models are small and built from stand-in Transform outputs (vocabularies only), so every row is known."""

from __future__ import annotations

import dataclasses
import json
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import features, trainer, warm_start
from models.features import Feature

USERS, ITEMS, CATEGORIES = features.USER_VOCABULARY, features.ITEM_VOCABULARY, features.CATEGORY_VOCABULARY
DEVICE = Feature("device", features.EVENTS_SOURCE, features.CATEGORICAL)
AGE = Feature("age_group", features.USERS_SOURCE, features.CATEGORICAL)
REGION = Feature("region", features.USERS_SOURCE, features.CATEGORICAL)
AUTHOR = Feature("author", features.ITEMS_SOURCE, features.CATEGORICAL, hash_buckets=5)
HOUR = Feature("hour", features.EVENTS_SOURCE, features.TIMESTAMP_PART, part="hour")
TENURE = Feature("tenure", features.USERS_SOURCE, features.NUMERIC)
DECLARED = [DEVICE, AGE, AUTHOR, HOUR, TENURE]

OLD = {USERS: ["u1", "u2", "u3", "u4"], ITEMS: ["i1", "i2", "i3"], CATEGORIES: ["c1", "c2"],
       DEVICE.vocabulary_name: ["mobile", "tv"], AGE.vocabulary_name: ["18-24", "25-34"],
       REGION.vocabulary_name: ["north", "south"]}
# Reordered, grown (u5, u6, i4, c3, desktop) and shrunk (u4, i2 and "25-34" gone).
NEW = {USERS: ["u3", "u5", "u1", "u2", "u6"], ITEMS: ["i3", "i4", "i1"], CATEGORIES: ["c2", "c3", "c1"],
       DEVICE.vocabulary_name: ["tv", "desktop", "mobile"], AGE.vocabulary_name: ["18-24"],
       REGION.vocabulary_name: ["south"]}
TASKS = [{"name": "retrieval", "type": "retrieval", "label": "clicked"},
         {"name": "click", "type": "binary", "label": "clicked"}]
MODEL = {"type": "mtrec", "embedding_dim": 8, "architecture": "mmoe", "num_experts": 2, "num_task_experts": 1,
         "num_levels": 1, "expert_units": [8], "tower_units": [4], "feature_cross_layers": 1, "temperature": 0.1,
         "logq_correction": False, "loss_balancing": "fixed", "use_categories": True, "max_categories": 2,
         "feature_embedding_dim": 4, "item_id_dropout": 0.1, "user_tower": "mean", "sequence_layers": 1,
         "sequence_heads": 2, "target_attention": False, "tasks": TASKS}
TABLES = ("user_id_embedding", "item_id_embedding", "category_embedding")


class Vocabularies:
    """Stands in for a TFTransformOutput: its vocabularies, as bytes like TFT's."""

    def __init__(self, vocabularies: dict[str, list[str]]):
        self.vocabularies = vocabularies

    def vocabulary_by_name(self, name: str) -> list[bytes]:
        return [value.encode() for value in self.vocabularies[name]]

    def vocabulary_size_by_name(self, name: str) -> int:
        return len(self.vocabularies[name])


def _config(declared=DECLARED, model_type="mtrec", **model):
    return {"model": {**MODEL, "type": model_type, **model}, "text_encoder": {"mode": "off"},
            "features": [dataclasses.asdict(feature) for feature in declared],
            "training": {"epochs": 3, "warm_start": True, "warm_start_epochs": 1}}


def _batch(config):
    batch = {features.USER_INDEX: np.array([0, 1]), features.ITEM_INDEX: np.array([1, 2]),
             features.HISTORY_INDICES: np.array([[1, 2, 0], [0, 0, 0]]),
             features.CATEGORY_INDICES: np.ones((2, 2), int),
             features.transformed_label("click"): np.array([1.0, 0.0], np.float32),
             features.transformed_label("retrieval"): np.array([1.0, 0.0], np.float32)}
    for feature in features.declared(config["features"]):
        batch[feature.input_name] = (np.zeros((2, 2), np.float32) if feature.is_dense else np.ones(2, int))
    return batch


def _model(vocabularies, config, seed):
    keras.utils.set_random_seed(seed)
    model = trainer.build_model(Vocabularies(vocabularies), config)
    model(_batch(config))
    return model


def _weights(model):
    return {key: np.array(variable.numpy()) for key, variable in warm_start.variable_keys(model).items()}


@pytest.fixture
def base(tmp_path):
    """(model, Model artifact dir) of a 'trained' base model: random values in every trainable weight."""
    model = _model(OLD, _config(), seed=1)
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    artifact = str(tmp_path / "base_model")
    warm_start.save_state(model, Vocabularies(OLD), _config(), artifact)
    return model, artifact


def _key(model, table_name):
    """The variable key of an id table."""
    table = next(table for table in warm_start.id_tables(model) if table.name == table_name)
    return next(key for key, variable in warm_start.variable_keys(model).items() if variable is table.variable)


@pytest.mark.parametrize(("old", "new", "offset", "new_rows", "old_rows"), [
    # reordered and grown: c and a are known, d and e new, b dropped; padding row 0 and the OOV row map
    (["a", "b", "c"], ["c", "a", "d", "e"], 1, [0, 1, 2, 5], [0, 3, 1, 4]),
    # shrunk, no padding row (the user table)
    (["a", "b", "c", "d"], ["d", "b"], 0, [0, 1, 2], [3, 1, 4]),
    # nothing in common: only the padding and OOV rows
    (["a"], ["b", "c"], 1, [0, 3], [0, 2]),
    (["a", "b"], [], 0, [0], [2]),
])
def test_rows_map_by_id_string(old, new, offset, new_rows, old_rows):
    mapped_new, mapped_old = warm_start.map_rows(old, new, offset)
    np.testing.assert_array_equal(mapped_new, new_rows)
    np.testing.assert_array_equal(mapped_old, old_rows)


def test_rows_map_at_catalogue_scale():
    old = [f"id{i}" for i in range(200_000)]
    new = old[::-1][:150_000] + [f"new{i}" for i in range(1000)]
    new_rows, old_rows = warm_start.map_rows(old, new, 1)
    assert len(new_rows) == 150_000 + 2
    assert [old[row - 1] for row in old_rows[1:100]] == [new[row - 1] for row in new_rows[1:100]]


def test_known_ids_keep_their_rows_and_new_ids_start_fresh(base):
    base_model, artifact = base
    old = _weights(base_model)
    model = _model(NEW, _config(), seed=2)
    initial = _weights(model)
    report = warm_start.carry(model, Vocabularies(NEW), _config(), artifact)
    carried = _weights(model)

    for name, vocabulary, offset in (("user_id_embedding", USERS, 0), ("item_id_embedding", ITEMS, 1),
                                     ("category_embedding", CATEGORIES, 1),
                                     ("device_embedding", DEVICE.vocabulary_name, 1),
                                     ("age_group_embedding", AGE.vocabulary_name, 1)):
        key = _key(model, name)
        before, after, fresh = old[_key(base_model, name)], carried[key], initial[key]
        np.testing.assert_array_equal(after[:offset], before[:offset])  # padding / missing row
        np.testing.assert_array_equal(after[-1], before[-1])  # OOV row
        for row, identifier in enumerate(NEW[vocabulary], start=offset):
            if identifier in OLD[vocabulary]:
                np.testing.assert_array_equal(after[row], before[offset + OLD[vocabulary].index(identifier)])
            else:
                np.testing.assert_array_equal(after[row], fresh[row])
    tables = {name: (rows.known, rows.new, rows.dropped) for name, rows in report.tables.items()}
    assert tables == {"user_id_embedding": (3, 2, 1), "item_id_embedding": (2, 1, 1),
                      "category_embedding": (2, 1, 0), "device_embedding": (2, 1, 0), "age_group_embedding": (1, 0, 1)}
    table_keys = {_key(model, table.name) for table in warm_start.id_tables(model)}
    dense = sorted(set(carried) - table_keys)
    assert sorted(report.dense) == dense  # the hashed, timestamp and every other weight, by key
    assert {"item_tower/item_features/embeddings/author/embeddings",  # hash buckets and a timestamp part
            "context_features/embeddings/hour/embeddings", "crosses/0/dense/kernel"} <= set(dense)
    for key in dense:
        np.testing.assert_array_equal(carried[key], old[key])
    assert report.not_carried == {} and report.notes == []
    assert json.loads(report.to_json())["tables"]["user_id_embedding"] == {"known": 3, "new": 2, "dropped": 1}
    assert "3 known ids keep their rows, 2 new ids start fresh, 1 ids dropped" in str(report)


def test_a_changed_feature_set_names_what_does_not_carry(base):
    base_model, artifact = base
    declared = [DEVICE, REGION, AUTHOR, HOUR, TENURE]  # age_group removed, region added (same width)
    model = _model(NEW, _config(declared), seed=2)
    report = warm_start.carry(model, Vocabularies(NEW), _config(declared), artifact)
    region = _key(model, "region_embedding")
    age = _key(base_model, "age_group_embedding")
    assert report.not_carried == {region: "not in the base model", age: "not in the new model"}
    assert set(report.tables) == {"user_id_embedding", "item_id_embedding", "category_embedding", "device_embedding"}
    assert report.notes == ["declared features differ from the base model's: added ['region'], removed ['age_group']"]


def test_a_feature_whose_index_space_changed_does_not_carry(base):
    _, artifact = base
    declared = [dataclasses.replace(DEVICE, hash_buckets=3), AGE, AUTHOR, HOUR, TENURE]
    model = _model(NEW, _config(declared), seed=2)
    report = warm_start.carry(model, Vocabularies(NEW), _config(declared), artifact)
    assert report.not_carried == {
        "context_features/embeddings/device/embeddings": "declared feature 'device' changed ['hash_buckets']"}
    assert "device_embedding" not in report.tables


def test_a_changed_embedding_dim_names_the_shape_mismatches(base):
    _, artifact = base
    config = _config(embedding_dim=12)
    model = _model(NEW, config, seed=2)
    report = warm_start.carry(model, Vocabularies(NEW), config, artifact)
    assert report.not_carried[_key(model, "user_id_embedding")] == (
        "shape mismatch: base [5, 8], new [6, 12]")
    for name in TABLES:
        assert report.not_carried[_key(model, name)].startswith("shape mismatch")
    assert set(report.tables) == {"device_embedding", "age_group_embedding"}  # feature_embedding_dim is unchanged
    assert all(reason.startswith("shape mismatch") for reason in report.not_carried.values())


def test_an_incomplete_state_is_refused(base, tmp_path):
    model_, artifact = base
    model = _model(NEW, _config(), seed=2)
    state = os.path.join(artifact, warm_start.STATE_DIR)
    assert sorted(os.listdir(artifact)) == [warm_start.STATE_DIR]  # no temporary sibling left
    with open(os.path.join(state, warm_start.WEIGHTS_FILE), "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(warm_start.WarmStartError, match="incomplete.*weights.npz"):
        warm_start.carry(model, Vocabularies(NEW), _config(), artifact)
    warm_start.save_state(model_, Vocabularies(OLD), _config(), artifact)  # rewritten whole
    warm_start.carry(model, Vocabularies(NEW), _config(), artifact)
    os.remove(os.path.join(state, warm_start.MARKER_FILE))
    with pytest.raises(warm_start.WarmStartError, match="incomplete.*COMPLETE is missing"):
        warm_start.carry(model, Vocabularies(NEW), _config(), artifact)
    with pytest.raises(warm_start.WarmStartError, match="no warm start state"):
        warm_start.carry(model, Vocabularies(NEW), _config(), str(tmp_path / "elsewhere"))


def test_another_model_type_is_refused(base, tmp_path):
    base_model, _ = base
    artifact = str(tmp_path / "tfrs_model")
    warm_start.save_state(base_model, Vocabularies(OLD), _config(model_type="tfrs"), artifact)
    model = _model(NEW, _config(), seed=2)
    with pytest.raises(warm_start.WarmStartError, match="base model is a 'tfrs' model"):
        warm_start.carry(model, Vocabularies(NEW), _config(), artifact)
    with pytest.raises(warm_start.WarmStartError, match="'tfrs' does not support warm start"):
        warm_start.carry(model, Vocabularies(NEW), _config(model_type="tfrs"), artifact)


def _setup(config):
    keras.utils.set_random_seed(2)
    model = trainer.build_model(Vocabularies(NEW), config)  # unbuilt, as prepare_training leaves it
    train = tf.data.Dataset.from_tensor_slices(_batch(config)).batch(2)
    return types.SimpleNamespace(model=model, train=train, tft_output=Vocabularies(NEW))


def test_the_trainer_carries_from_the_base_model_artifact(base, tmp_path):
    """fn_args.base_model is the blessed Model artifact's Format-Serving directory; the state is beside it."""
    base_model, artifact = base
    config = _config()
    run_dir = tmp_path / "model_run"
    run_dir.mkdir()
    fn_args = types.SimpleNamespace(custom_config=config, base_model=os.path.join(artifact, "Format-Serving"),
                                    model_run_dir=str(run_dir))
    setup = _setup(config)
    assert trainer.apply_warm_start(fn_args, setup) == 1  # warm_start_epochs
    key = _key(setup.model, "user_id_embedding")
    np.testing.assert_array_equal(_weights(setup.model)[key][0], _weights(base_model)[key][2])  # u3
    written = json.loads((run_dir / trainer.WARM_START_FILE).read_text())
    assert written["tables"]["item_id_embedding"] == {"known": 2, "new": 1, "dropped": 1}

    first_run = types.SimpleNamespace(custom_config=config, base_model=None, model_run_dir=str(run_dir))
    assert trainer.apply_warm_start(first_run, _setup(config)) == 3  # no blessed model yet: epochs
    off = _config()
    off["training"]["warm_start"] = False
    assert trainer.apply_warm_start(types.SimpleNamespace(custom_config=off, base_model=fn_args.base_model,
                                                          model_run_dir=str(run_dir)), _setup(off)) == 3
    missing = types.SimpleNamespace(custom_config=config, base_model=str(tmp_path / "old" / "Format-Serving"),
                                    model_run_dir=str(run_dir))
    with pytest.raises(warm_start.WarmStartError, match="no warm start state"):
        trainer.apply_warm_start(missing, _setup(config))


def test_variable_keys_do_not_depend_on_what_the_process_built_before():
    """keras_rs FeatureCross names its Dense itself ("dense", "dense_1", ...): the variable paths of one model differ
    between two builds, its keys (attribute names) do not, and every weight is reached by them."""
    first, second = _model(OLD, _config(), seed=1), _model(OLD, _config(), seed=1)
    keys = [warm_start.variable_keys(model) for model in (first, second)]
    paths = [{variable.path for variable in model.trainable_variables} for model in (first, second)]
    assert paths[0] != paths[1]
    assert list(keys[0]) == list(keys[1])
    assert len(keys[0]) == len(first.trainable_variables) and not set(keys[0]) & paths[0]


def test_the_trainer_refuses_to_warm_start_the_tfrs_baseline():
    fn_args = types.SimpleNamespace(custom_config=_config(model_type="tfrs"), base_model=None)
    with pytest.raises(warm_start.WarmStartError, match="TFRS baseline does not support warm start"):
        trainer.run_fn(fn_args)
