"""Knowledge distillation: the soft losses against hand computation, how a student mixes them with its label losses,
and how the teacher is found (none blessed yet, a path, a student's own teacher)."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import distillation, features, tasks
from models.tasks import Task
from tests.models.model_test import BATCH, DIM, batch, build


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_soft_binary_loss_matches_hand_computation():
    teacher = np.array([0.9, 0.2, 0.5, 0.01])
    logits = np.array([1.0, -2.0, 0.3, 0.0])
    temperature = 2.0
    # The teacher's probability is tempered through its logit: sigmoid(logit(p) / T); the student's likewise.
    target = _sigmoid(np.log(teacher / (1 - teacher)) / temperature)
    student = _sigmoid(logits / temperature)
    per_row = -(target * np.log(student) + (1 - target) * np.log(1 - student))
    expected = per_row.mean() * temperature ** 2
    assert float(tasks.soft_binary_loss(teacher, logits, temperature)) == pytest.approx(expected, rel=1e-5)
    # At temperature 1 it is the cross-entropy against the teacher's own probabilities.
    plain = -(teacher * np.log(_sigmoid(logits)) + (1 - teacher) * np.log(1 - _sigmoid(logits))).mean()
    assert float(tasks.soft_binary_loss(teacher, logits, 1.0)) == pytest.approx(plain, rel=1e-5)


def test_soft_retrieval_loss_is_the_kl_between_the_in_batch_softmaxes():
    rng = np.random.default_rng(0)
    student_users, student_items = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    teacher_users, teacher_items = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))  # another dimension
    temperature, distillation_temperature = 0.5, 2.0
    scale = temperature * distillation_temperature
    student = _log_softmax(_unit(student_users) @ _unit(student_items).T / scale)
    teacher = _log_softmax(_unit(teacher_users) @ _unit(teacher_items).T / scale)
    expected = (np.exp(teacher) * (teacher - student)).sum(axis=1).mean() * distillation_temperature ** 2
    loss = tasks.soft_retrieval_loss(student_users, student_items, teacher_users, teacher_items, temperature,
                                     distillation_temperature)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert expected > 0.01
    # A student that scores the batch as its teacher does has nothing left to learn; scaled embeddings score alike.
    same = tasks.soft_retrieval_loss(teacher_users, teacher_items, 3 * teacher_users, teacher_items, temperature,
                                     distillation_temperature)
    assert float(same) == pytest.approx(0.0, abs=1e-5)


def _with_teacher(data, tasks_taught):
    """`data` with a teacher's outputs for `tasks_taught` (task name -> values) and its embeddings."""
    rng = np.random.default_rng(1)
    return {**data, **{features.teacher_output(name): values for name, values in tasks_taught.items()},
            features.teacher_output(features.USER_EMBEDDING): rng.normal(size=(BATCH, 6)).astype("float32"),
            features.teacher_output(features.ITEM_EMBEDDING): rng.normal(size=(BATCH, 6)).astype("float32")}


def test_a_student_mixes_each_taught_tasks_label_and_soft_losses_by_the_weights():
    settings = distillation.Distillation(hard_weight=0.5, soft_weight=2.0, temperature=2.0)
    student = build(text="off", distillation=settings)
    # The teacher predicts click, not rating: rating keeps its label loss alone.
    data = _with_teacher(batch(), {"click": np.linspace(0.05, 0.95, BATCH).astype("float32")})
    total = float(student.compute_loss(x=data, y_pred=student(data, training=True)))
    assert [task.name for task in student.distilled_tasks(["click", "user_embedding", "item_embedding"])] == [
        "retrieval", "click"]
    hard = {name: float(tracker.result()) for name, tracker in student.loss_trackers.items()}
    soft = {name: float(tracker.result()) for name, tracker in student.soft_loss_trackers.items()}
    assert soft["click"] > 0 and soft["retrieval"] > 0 and soft["rating"] == 0.0  # no update: no soft loss
    expected = sum(0.5 * hard[name] + 2.0 * soft[name] for name in ("retrieval", "click")) + hard["rating"]
    assert total == pytest.approx(expected, rel=1e-5)
    # The label losses are the plain model's own.
    plain = build(text="off")
    plain.compute_loss(x=data, y_pred=plain(data, training=True))
    assert {name: float(tracker.result()) for name, tracker in plain.loss_trackers.items()} == pytest.approx(hard)


def test_a_log1p_regression_student_learns_the_teachers_prediction_on_the_transformed_scale():
    task_list = [Task("watch", "regression", "watch_seconds", label_transform="log1p")]
    data = {**batch(), features.transformed_label("watch"): np.log1p(np.arange(BATCH, dtype="float32"))}
    student = build(task_list, text="off", distillation=distillation.Distillation(temperature=3.0))
    outputs = student(data, training=False)
    teacher = np.full(BATCH, 9.0, "float32")  # served on the label's scale
    soft = student.soft_losses({**data, features.teacher_output("watch"): teacher}, outputs)
    transformed = np.asarray(outputs[features.transformed_output_name("watch")])
    assert float(soft["watch"]) == pytest.approx(np.mean((np.log1p(teacher) - transformed) ** 2), rel=1e-5)


def test_a_student_learns_the_teachers_ranking_from_the_soft_losses_alone():
    """With hard_weight 0 the labels cannot teach: what the student learns comes from the teacher. Its click
    predictions move to the teacher's order, which here is the opposite of the labels'."""
    student = build([Task("click", "binary", "clicked")], text="off",
                    distillation=distillation.Distillation(hard_weight=0.0, soft_weight=1.0, temperature=1.0))
    data = batch()
    labels = data[features.transformed_label("click")]
    data = {**data, features.teacher_output("click"): np.where(labels > 0, 0.1, 0.9).astype("float32")}
    student.compile(optimizer=keras.optimizers.Adam(0.05))
    dataset = tf.data.Dataset.from_tensors(data).repeat(60)
    student.fit(dataset, epochs=1, verbose=0)
    predicted = np.asarray(student(data, training=False)["click"])
    assert predicted[labels == 0].min() > predicted[labels > 0].max()


# === Finding the teacher ===


def _saved_model(directory) -> str:
    os.makedirs(directory, exist_ok=True)
    open(os.path.join(directory, "saved_model.pb"), "wb").close()
    return str(directory)


def test_latest_blessed_without_a_blessed_model_says_what_to_do():
    with pytest.raises(distillation.TeacherError, match="no blessed model yet. Run it once without `distillation`"):
        distillation.resolve_teacher(features.LATEST_BLESSED_TEACHER, None)


def test_a_teacher_path_must_hold_a_saved_model(tmp_path):
    with pytest.raises(distillation.TeacherError, match="holds no SavedModel"):
        distillation.resolve_teacher(str(tmp_path), None)
    assert distillation.resolve_teacher(_saved_model(tmp_path / "teacher"), "/ignored") == str(tmp_path / "teacher")


def test_the_latest_blessed_student_hands_on_its_own_teacher(tmp_path):
    teacher = _saved_model(tmp_path / "Model" / "1" / "Format-Serving")
    student = _saved_model(tmp_path / "Model" / "2" / "Format-Serving")
    # A model trained without a teacher is the teacher itself.
    assert distillation.resolve_teacher(features.LATEST_BLESSED_TEACHER, teacher) == teacher
    distillation.write_record(str(tmp_path / "Model" / "2"), teacher, distillation.Distillation(), ["click"])
    assert distillation.read_record(str(tmp_path / "Model" / "2"))["soft_targets"] == ["click"]
    assert distillation.resolve_teacher(features.LATEST_BLESSED_TEACHER, student) == teacher
    os.remove(os.path.join(teacher, "saved_model.pb"))
    with pytest.raises(distillation.TeacherError, match="is a student whose teacher, .* is gone"):
        distillation.resolve_teacher(features.LATEST_BLESSED_TEACHER, student)


def test_a_directory_that_is_no_serving_model_is_refused_by_name(tmp_path):
    with pytest.raises(distillation.TeacherError, match=f"{tmp_path} is not an mtrec serving model"):
        distillation.Teacher(str(tmp_path))


def test_the_teacher_answers_raw_examples_with_its_serving_outputs(tmp_path):
    """A stand-in teacher with the serving signature's contract: serialized examples in, named outputs out."""

    class Stand(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT)])
        def serve(self, examples):
            parsed = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([], tf.float32)})
            return {"click": tf.sigmoid(parsed["x"]), features.USER_EMBEDDING: tf.ones([tf.size(examples), DIM])}

    module = Stand()
    tf.saved_model.save(module, str(tmp_path), signatures={features.SERVING_SIGNATURE: module.serve})
    teacher = distillation.Teacher(str(tmp_path))
    assert teacher.output_names == ["click", features.USER_EMBEDDING]
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[value]))})).SerializeToString()
        for value in (0.0, 2.0)]
    outputs = teacher(tf.constant(examples))
    assert sorted(outputs) == [features.teacher_output("click"), features.teacher_output(features.USER_EMBEDDING)]
    assert np.asarray(outputs[features.teacher_output("click")]) == pytest.approx(_sigmoid(np.array([0.0, 2.0])))


# === The Trainer's batches: raw examples through the student's Transform layer and the teacher ===


def _raw_examples_file(data_dir: str, path: str) -> list[bytes]:
    """ExampleGen's output format (GZIP TFRecords of raw tf.Examples) for the small model's data."""
    from benchmarks import small_model

    serialized = [example.SerializeToString() for example in small_model._examples(data_dir, [])]
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in serialized:
            writer.write(record)
    return serialized


def test_each_batch_holds_the_students_transformed_rows_and_the_teachers_outputs_for_them(exported_model, tmp_path):
    import tensorflow_transform as tft

    from benchmarks import in_process, small_model

    data_dir, model_dir = exported_model
    serialized = _raw_examples_file(data_dir, str(tmp_path / "train.gz"))
    tft_output = tft.TFTransformOutput(os.path.join(os.path.dirname(data_dir), "transform"))
    teacher = distillation.Teacher(model_dir)
    batches = list(distillation.dataset([str(tmp_path / "*.gz")], tft_output, 32, shuffle=False, teacher=teacher))
    assert sum(len(batch[features.ITEM_INDEX]) for batch in batches) == len(serialized)
    first = batches[0]
    # The same features and labels as Transform materializes for the rows ...
    materialized = in_process.transform(tft_output, small_model._examples(data_dir, [])[:32])
    for name, values in materialized.items():
        np.testing.assert_array_equal(np.asarray(first[name]), values)
    # ... and the teacher's serving outputs for those very rows.
    direct = tf.saved_model.load(model_dir).signatures[features.SERVING_SIGNATURE](
        examples=tf.constant(serialized[:32]))
    assert set(teacher.output_names) == set(direct) >= {"click", "rating", features.USER_EMBEDDING}
    for name, values in direct.items():
        np.testing.assert_allclose(np.asarray(first[features.teacher_output(name)]), np.asarray(values), rtol=1e-5)


def train_mirrored(root: str, model_dir: str) -> None:
    """Subprocess: a student trained on `dataset` batches under MirroredStrategy over two logical CPUs (the teacher
    runs inside the input pipeline, whose batches the strategy splits)."""
    import dataclasses
    import json

    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * 2)
    import tensorflow_transform as tft

    from benchmarks import small_model
    from components.example_gen import input_contract
    from models import trainer
    from pipeline import config as config_lib

    tft_output = tft.TFTransformOutput(os.path.join(root, "transform"))
    files = [os.path.join(root, "train.gz")]
    catalogue = list(input_contract.read_items(os.path.join(root, "data", input_contract.ITEMS_FILE)).values())
    config = {**small_model.TRAINER_CONFIG, "training": {**dataclasses.asdict(config_lib.Training()),
                                                         "distribution": "mirrored"},
              "distillation": {"teacher": model_dir, **dataclasses.asdict(distillation.Distillation())}}
    model = trainer.compiled_model(tft_output, config, distillation.dataset(files, tft_output, 64, shuffle=False),
                                   catalogue)
    train = distillation.dataset(files, tft_output, 64, shuffle=True, teacher=distillation.Teacher(model_dir))
    history = model.fit(train, epochs=1, verbose=0).history
    with open(os.path.join(root, "mirrored.json"), "w", encoding="utf-8") as handle:
        json.dump({"replicas": model.distribute_strategy.num_replicas_in_sync,
                   "history": {key: values[-1] for key, values in history.items()}}, handle)


def test_a_student_trains_under_a_distribution_strategy(exported_model):
    import json
    import subprocess
    import sys

    data_dir, model_dir = exported_model
    root = os.path.dirname(data_dir)
    _raw_examples_file(data_dir, os.path.join(root, "train.gz"))
    script = f"from tests.models.distillation_test import train_mirrored; train_mirrored({root!r}, {model_dir!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    with open(os.path.join(root, "mirrored.json"), encoding="utf-8") as handle:
        trained = json.load(handle)
    assert trained["replicas"] == 2
    for task in ("retrieval", "click", "rating"):  # the small model's tasks
        assert 0 < trained["history"][f"{task}_soft_loss"] < 100
