"""Knowledge distillation: a student model trained on the labels and on a teacher's outputs.

The teacher is any mtrec serving SavedModel (models/export.py). Its `serving_default` signature reads serialized
raw tf.Examples through the teacher's own Transform graph, so the teacher and the student need not share
features, vocabularies or a text encoder. A distilling Trainer therefore reads ExampleGen's raw examples: each
batch goes through the student's Transform layer and, the same batch, through the teacher (`dataset`), so the
teacher's outputs travel beside the student's features under `features.teacher_output` keys. The soft losses
are in models/tasks.py; MultiTaskRecommender.compute_loss mixes them with the hard ones by `Distillation`.

The teacher is named by a path, or as "latest_blessed" (features.LATEST_BLESSED_TEACHER): the latest blessed model
of the pipeline, which ML Metadata resolves (the Trainer's base model). A student records its teacher in its Model
artifact (RECORD_FILE), so when the latest blessed model is itself a student, its own teacher teaches the next
one: a pipeline that pushes students keeps distilling from the teacher, not from the previous student.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from models import features
from models.warm_start import artifact_dir

RECORD_FILE = "distillation.json"  # in a student's Model artifact: its teacher and the settings it learnt with
SHUFFLE_BUFFER = 10_000  # rows, as the Trainer's transformed-examples reader shuffles (tfxio's default)


class TeacherError(ValueError):
    """The teacher cannot be found or read; the message says which and what to do."""


@dataclasses.dataclass(frozen=True)
class Distillation:
    """How the student's loss mixes labels and teacher: each task's loss is `hard_weight` times its label loss
    plus `soft_weight` times its soft loss, the soft losses of binary and retrieval tasks at `temperature`. A task
    the teacher does not predict keeps its label loss alone."""

    hard_weight: float = 1.0
    soft_weight: float = 1.0
    temperature: float = 2.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Distillation:
        return cls(**{field.name: config[field.name] for field in dataclasses.fields(cls)})


def record_path(artifact_dir: str) -> str:
    return os.path.join(artifact_dir, RECORD_FILE)


def read_record(artifact_dir: str) -> dict[str, Any] | None:
    """A student's record (its teacher and settings); None for a model trained without a teacher."""
    path = record_path(artifact_dir)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def write_record(artifact_dir: str, teacher_path: str, settings: Distillation, soft_targets: list[str]) -> None:
    """Records, in a student's Model artifact, the teacher it learnt from, how, and which outputs it imitated."""
    record = {"teacher": teacher_path, **dataclasses.asdict(settings), "soft_targets": soft_targets}
    with tf.io.gfile.GFile(record_path(artifact_dir), "w") as handle:
        json.dump(record, handle, indent=2)


def _holds_saved_model(directory: str) -> bool:
    return tf.io.gfile.exists(os.path.join(directory, "saved_model.pb"))


def resolve_teacher(teacher: str, base_model: str | None) -> str:
    """The teacher's SavedModel directory. `teacher`: a SavedModel path, or "latest_blessed", for which
    `base_model` is the pipeline's latest blessed model (fn_args.base_model); when that model is a student, the
    teacher it learnt from."""
    if teacher != features.LATEST_BLESSED_TEACHER:
        if not _holds_saved_model(teacher):
            raise TeacherError(f"distillation.teacher: {teacher!r} holds no SavedModel (saved_model.pb); name the "
                               f"directory of an mtrec serving model, e.g. a version under the serving directory")
        return teacher
    if not base_model:
        raise TeacherError("distillation.teacher: latest_blessed, but this pipeline has no blessed model yet. Run it "
                           "once without `distillation` to train and bless the teacher, or name a teacher's "
                           "SavedModel directory")
    record = read_record(artifact_dir(base_model))
    if record is None:
        return base_model
    if not _holds_saved_model(record["teacher"]):
        raise TeacherError(f"distillation.teacher: the latest blessed model ({base_model}) is a student whose "
                           f"teacher, {record['teacher']}, is gone; name a teacher's SavedModel directory")
    return record["teacher"]


class Teacher:
    """A teacher SavedModel's `serving_default` outputs for a batch of serialized raw tf.Examples, under
    `features.teacher_output` keys: each of its tasks' predictions and its user and item embeddings."""

    def __init__(self, path: str):
        import tensorflow_text  # noqa: F401 - registers the WordPiece ops of the teacher's Transform graph

        try:
            self._loaded = tf.saved_model.load(path)
            self._signature = self._loaded.signatures[features.SERVING_SIGNATURE]
        except (OSError, KeyError, ValueError, tf.errors.OpError) as error:
            raise TeacherError(f"distillation.teacher: {path} is not an mtrec serving model "
                               f"({type(error).__name__}: {error})") from error
        self.path = path
        self.output_names = sorted(self._signature.structured_outputs)

    def __call__(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.teacher_output(name): value
                for name, value in self._signature(**{features.EXAMPLES_INPUT: serialized}).items()}


def dataset(file_patterns: list[str], tft_output: tft.TFTransformOutput, batch_size: int, shuffle: bool,
            seed: int = 0, teacher: Teacher | None = None) -> tf.data.Dataset:
    """One pass over raw examples (ExampleGen's GZIP TFRecords) as the student's transformed features and labels,
    plus, with `teacher`, the teacher's outputs for the very same rows."""
    files = sorted(path for pattern in file_patterns for path in tf.io.gfile.glob(pattern))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if shuffle:
        records = records.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()

    def prepare(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = dict(layer(tf.io.parse_example(serialized, raw_spec)))
        if teacher is not None:
            batch.update(teacher(serialized))
        return batch

    return records.batch(batch_size).map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
