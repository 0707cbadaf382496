"""Training under a distribution strategy, in mixed precision and with XLA: the same model as on one device.

The trainings run in one subprocess, because the CPU must be split into two logical devices before TensorFlow
initialises. Each trains the Trainer's own `compiled_model` on the same transformed data, unshuffled, with the
same seed and global batch size, for two epochs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

TRAININGS = {  # name -> training settings of the config
    "default": {},
    "mirrored": {"distribution": "mirrored"},
    "mixed_float16": {"mixed_precision": "mixed_float16"},
    "jit": {"jit_compile": True},
}
BATCH_SIZE = 64  # even; an odd number of examples ends in an odd batch, which two replicas share unevenly
TASK_LOSSES = ("retrieval_loss", "click_loss", "rating_loss")


def train_all(root: str) -> None:
    """Subprocess: trains every TRAININGS entry on the data under `root`; writes results.json and weights."""
    import tensorflow as tf

    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import tensorflow_text  # noqa: F401  (the Transform graph's WordPiece ops)
    import tensorflow_transform as tft

    from benchmarks import small_model
    from components.example_gen import input_contract
    from models import export, trainer
    from pipeline import config as config_lib

    tft_output = tft.TFTransformOutput(os.path.join(root, "transform"))
    with np.load(os.path.join(root, "transformed.npz")) as data:
        columns = {key: data[key] for key in data.files}
    catalogue = list(input_contract.read_items(os.path.join(root, "data", input_contract.ITEMS_FILE)).values())
    results = {}
    for name, settings in TRAININGS.items():
        training = {**dataclasses.asdict(config_lib.Training()), "seed": 0, **settings}
        keras.utils.set_random_seed(0)
        dataset = tf.data.Dataset.from_tensor_slices(columns).batch(BATCH_SIZE)
        # Item id dropout draws its own ids on each replica, so the strategies would train on different drops.
        model_config = {**small_model.TRAINER_CONFIG["model"], "item_id_dropout": 0.0}
        model = trainer.compiled_model(
            tft_output, {**small_model.TRAINER_CONFIG, "model": model_config, "training": training}, dataset, catalogue)
        history = model.fit(dataset, epochs=2, verbose=0).history
        outputs = model(next(iter(dataset)))
        results[name] = {
            "history": {key: [float(value) for value in values] for key, values in history.items()},
            "replicas": model.distribute_strategy.num_replicas_in_sync,
            "output_dtypes": {key: str(value.dtype.name) for key, value in outputs.items()},
            "architecture_dtype": model.architecture.compute_dtype,
            "optimizer": type(model.optimizer).__name__,
            "jit_compile": model.jit_compile,
            "policy_after": keras.config.dtype_policy().name,
        }
        np.savez(os.path.join(root, f"{name}_weights.npz"), *model.get_weights())
        if name == "mixed_float16":  # the serving model of a mixed-precision model
            export_dir = os.path.join(root, "mixed_export")
            export.save_serving_model(model, tft_output, catalogue, export_dir)
            served = tf.saved_model.load(export_dir).signatures["item_embedding"](
                item_ids=tf.constant([item.item_id for item in catalogue[:3]]))
            results[name]["served_dtypes"] = {key: value.dtype.name for key, value in served.items()}
    with open(os.path.join(root, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from benchmarks import in_process, small_model
    from pipeline.data import synthetic

    root = tmp_path_factory.mktemp("distribution")
    synthetic.generate(str(root / "data"), small_model.DATA)
    examples = small_model._examples(str(root / "data"), [])
    examples = examples[:len(examples) - 1 + len(examples) % 2]  # an odd number of them
    tft_output = in_process.analyze(examples, small_model.TRANSFORM_CONFIG, str(root / "transform"))
    np.savez(root / "transformed.npz", **in_process.transform(tft_output, examples))
    assert len(examples) % BATCH_SIZE % 2 == 1  # so the last batch is odd
    script = f"from tests.models.distribution_test import train_all; train_all({str(root)!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    with open(root / "results.json", encoding="utf-8") as handle:
        results = json.load(handle)
    weights = {name: list(np.load(root / f"{name}_weights.npz").values()) for name in TRAININGS}
    return results, weights


def test_mirrored_over_two_cpus_trains_the_model_of_one_device(trained):
    """Same per-task losses per epoch and same weights. The arithmetic is the same: each replica's loss is its
    share of the global batch's (the retrieval task scores every replica's items), and the gradients are summed.
    Only the order of float32 additions differs (two partial sums per all-reduce), which moves values by about
    1e-7 per step; 1e-5 leaves headroom over the 12 steps. Replica-local semantics would miss by far more
    (unscaled losses move weights by ~0.2; per-replica negatives lower the retrieval loss by ~0.7)."""
    results, weights = trained
    assert results["default"]["replicas"] == 1 and results["mirrored"]["replicas"] == 2
    for loss in TASK_LOSSES:
        np.testing.assert_allclose(results["mirrored"]["history"][loss], results["default"]["history"][loss],
                                   rtol=1e-5, err_msg=loss)
    np.testing.assert_allclose(results["mirrored"]["history"]["click_auc"], results["default"]["history"]["click_auc"],
                               atol=1e-6)  # AUC's confusion counts are summed over replicas
    assert len(weights["mirrored"]) == len(weights["default"])
    for mirrored, single in zip(weights["mirrored"], weights["default"], strict=True):
        np.testing.assert_allclose(mirrored, single, atol=1e-5)


def test_mixed_precision_computes_in_float16_and_keeps_outputs_losses_and_export_float32(trained):
    results, _ = trained
    mixed = results["mixed_float16"]
    assert mixed["architecture_dtype"] == "float16"
    assert mixed["optimizer"] == "LossScaleOptimizer"  # float16 gradients need loss scaling
    assert set(mixed["output_dtypes"].values()) == {"float32"}
    assert mixed["served_dtypes"] == {"item_embedding": "float32"}
    assert mixed["policy_after"] == "float32"  # only the model built for the run is mixed
    for loss in TASK_LOSSES:
        assert all(np.isfinite(mixed["history"][loss]))
        # It learns as the float32 model does, up to half precision's rounding.
        np.testing.assert_allclose(mixed["history"][loss], results["default"]["history"][loss], rtol=0.02)
    assert mixed["history"]["loss"][1] < mixed["history"]["loss"][0]


def test_jit_compile_compiles_the_training_step_and_trains_the_same_model(trained):
    results, weights = trained
    assert results["jit"]["jit_compile"] is True and results["default"]["jit_compile"] is False
    for loss in TASK_LOSSES:  # XLA fuses ops, so float32 rounding differs a little
        np.testing.assert_allclose(results["jit"]["history"][loss], results["default"]["history"][loss], rtol=1e-4)
    for compiled, plain in zip(weights["jit"], weights["default"], strict=True):
        np.testing.assert_allclose(compiled, plain, atol=1e-4)
