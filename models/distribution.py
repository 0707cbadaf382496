"""How training is spread over devices and in which precision it computes: `training.distribution`,
`training.mixed_precision` (the config's names) to a tf.distribute strategy and a Keras dtype policy.

Keras 3 on TensorFlow runs `fit` under the strategy the model was built in: the model and optimizer variables
are mirrored, each global batch is split among the replicas, and gradients are summed across them. The batch
size in the config is the global one, so a run means the same thing on one device and on many.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import keras
import tensorflow as tf

DISTRIBUTIONS = ("default", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")


class DistributionError(RuntimeError):
    """The configured strategy cannot be created here; the message says why and what it needs."""


def strategy(name: str) -> tf.distribute.Strategy:
    """The strategy `name` (one of DISTRIBUTIONS).

    "mirrored" takes every local GPU, or every logical CPU device when there is no GPU (one, unless the CPU was
    split with tf.config.set_logical_device_configuration). "multi_worker_mirrored" reads the cluster from the
    TF_CONFIG environment variable (without it: this machine alone). "tpu" connects to the TPU that
    TPUClusterResolver finds (TPU_NAME, or the TPU VM's own).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker_mirrored":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise DistributionError(f"training.distribution 'tpu': no TPU could be reached ({error})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise DistributionError(f"training.distribution: must be one of {list(DISTRIBUTIONS)}, got {name!r}")


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if raw is None:
        return
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DistributionError(f"training.distribution 'multi_worker_mirrored': TF_CONFIG is not JSON "
                                f"({error})") from None
    if not (isinstance(value, dict) and isinstance(value.get("cluster"), dict)
            and isinstance(value.get("task"), dict)):
        raise DistributionError("training.distribution 'multi_worker_mirrored': TF_CONFIG needs a 'cluster' and a "
                                f"'task' mapping, got {raw!r}")


@contextlib.contextmanager
def precision(name: str) -> Iterator[None]:
    """Layers built inside compute in the precision `name` (one of PRECISIONS) and keep float32 variables.

    Keras layers take the global dtype policy when they are created, so only the model built here is affected;
    the previous policy is back afterwards. Layers that must stay float32 (outputs, losses) say so themselves.
    """
    if name not in PRECISIONS:
        raise DistributionError(f"training.mixed_precision: must be one of {list(PRECISIONS)}, got {name!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
