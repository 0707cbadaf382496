"""Configuration: defaults, YAML overrides, and every problem listed at once."""

from __future__ import annotations

import pytest

from pipeline import config


def test_defaults_validate_and_round_trip():
    defaults = config.RunConfig()
    assert config.from_dict(config.to_dict(defaults)) == defaults


def test_yaml_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  epochs: 7\nmodel:\n  architecture: ple\n  item_id_dropout: 0.3\n  tasks:\n"
                    "    - {name: retrieval, type: retrieval, label: null, weight: 0.5}\n"
                    "    - {name: liked, type: binary, label: clicked}\n")
    loaded = config.load(str(path))
    assert loaded.training.epochs == 7
    assert loaded.training.batch_size == config.Training().batch_size
    assert loaded.model.architecture == "ple" and loaded.model.num_experts == config.Model().num_experts
    assert loaded.model.item_id_dropout == 0.3 and config.from_dict(config.to_dict(loaded)) == loaded
    assert loaded.model.tasks == [config.Task("retrieval", "retrieval", None, 0.5),
                                  config.Task("liked", "binary", "clicked", 1.0)]


def test_declared_labels_and_their_kinds():
    loaded = config.from_dict({"model": {"tasks": [
        {"name": "retrieval", "type": "retrieval", "label": "watch_seconds"},
        {"name": "click", "type": "binary", "label": "is_click"},
        {"name": "like", "type": "binary", "label": "is_like", "given": "click", "entire_space": True},
        {"name": "watch", "type": "regression", "label": "watch_ratio", "given": "click"},
        {"name": "time", "type": "regression", "label": "watch_seconds", "label_transform": "log1p"}]}})
    assert config.label_columns(loaded) == {"watch_seconds": "non_negative", "is_click": "binary",
                                            "is_like": "binary", "watch_ratio": "numeric"}
    # Binary label columns are watched for drift and skew by default, beside the categories; numeric ones only
    # with a declared range (the default rating task has one).
    assert loaded.validation.drift == {"categories": 0.2, "is_click": 0.1, "is_like": 0.1}
    assert config.RunConfig().validation.skew == {"categories": 0.25, "clicked": 0.15, "rating": 0.15,
                                                  "purchased": 0.15}


def test_yaml_off_and_on_are_strings_where_the_docs_write_them(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("text_encoder:\n  mode: off\ntraining:\n  jit_compile: false\n")
    loaded = config.load(str(path))
    assert loaded.text_encoder.mode == "off" and loaded.training.jit_compile is False
    path.write_text("training:\n  jit_compile: yes\n")
    with pytest.raises(config.ConfigError, match="training.jit_compile: expected true or false, got 'yes'"):
        config.load(str(path))


def test_every_problem_is_reported_at_once():
    with pytest.raises(config.ConfigError) as raised:
        config.from_dict({
            "trainng": {},
            "training": {"epochs": "three", "batch_size": -4},
            "example_gen": {"split": "weekly", "eval_fraction": 1.5},
            "model": {"embedding_dim": 0},
        })
    message = str(raised.value)
    for expected in ("trainng: unknown key", "training.epochs: expected int, got 'three'",
                     "training.batch_size: must be positive, got -4", "example_gen.split: must be one of",
                     "example_gen.eval_fraction: must be between 0 and 1", "model.embedding_dim: must be positive"):
        assert expected in message


@pytest.mark.parametrize(("values", "expected"), [
    ({"data": {"source": "csv"}}, "data.path: required"),
    ({"model": {"tasks": [{"name": "ctr", "type": "ctr", "label": "clicked"}]}}, "model.tasks[0].type: must be one"),
    ({"model": {"tasks": [{"name": "buy", "type": "binary", "label": "title"}]}},
     "model.tasks[0].label: 'title' is not a label column"),
    ({"model": {"tasks": [{"name": "like", "type": "binary", "label": "is_like", "given": "click"}]}},
     "model.tasks[0].given: 'click' is not another task"),
    ({"model": {"tasks": [{"name": "like", "type": "binary", "label": "is_like", "given": "like"}]}},
     "model.tasks[0].given: 'like' is not another task"),
    ({"model": {"tasks": [{"name": "r", "type": "regression", "label": "rating"},
                          {"name": "like", "type": "binary", "label": "is_like", "given": "r"}]}},
     "model.tasks[1].given: the task it is conditioned on must be binary; 'r' is regression"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "x"},
                          {"name": "b", "type": "binary", "label": "y", "given": "a"},
                          {"name": "c", "type": "binary", "label": "z", "given": "b"}]}},
     "model.tasks[2].given: 'b' is itself conditioned (on 'a')"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "x", "entire_space": True}]}},
     "model.tasks[0].entire_space: needs a binary task with `given`"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "x", "label_transform": "log1p"}]}},
     "model.tasks[0].label_transform: only a regression label can be transformed"),
    ({"model": {"tasks": [{"name": "a", "type": "regression", "label": "x", "label_range": [5, 1]}]}},
     "model.tasks[0].label_range: must be [min, max] with min <= max"),
    ({"model": {"tasks": [{"name": "a", "type": "regression", "label": "x", "label_range": [0, 1]},
                          {"name": "b", "type": "regression", "label": "x", "label_range": [0, 2]}]}},
     "the tasks on column 'x' declare different label_range values"),
    ({"validation": {"drift": {"rating": 0.1}}, "model": {"tasks": [{"name": "a", "type": "binary", "label": "x"}]}},
     "validation.drift.rating: not a feature the check can watch"),
    ({"model": {"tasks": [{"name": "rating", "type": "regression"}]}}, "model.tasks[0].label"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "clicked", "weight": 0}]}}, "at least one task"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "clicked"}] * 2}}, "duplicate task name(s) ['a']"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "clicked", "colour": 1}]}},
     "model.tasks[0].colour: unknown key"),
    ({"model": {"tasks": {"name": "a"}}}, "model.tasks: expected a list"),
    ({"model": {"expert_units": [64, 0]}}, "model.expert_units: must be a non-empty list of positive numbers"),
    ({"model": {"architecture": "moe"}}, "model.architecture: must be one of"),
    ({"model": {"user_tower": "foo"}}, "model.user_tower: must be one of ['mean', 'transformer'], got 'foo'"),
    ({"model": {"sequence_layers": 0}}, "model.sequence_layers: must be positive, got 0"),
    ({"model": {"sequence_heads": -1}}, "model.sequence_heads: must be positive, got -1"),
    ({"model": {"target_attention": "yes"}}, "model.target_attention: expected true or false, got 'yes'"),
    ({"training": {"jit_compile": True}, "text_encoder": {"mode": "finetune"}},
     "text_encoder.distinct_texts: XLA (training.jit_compile) cannot compile the batch's distinct texts"),
    ({"model": {"type": "tfrs", "user_tower": "transformer", "tasks": [
        {"name": "retrieval", "type": "retrieval", "label": None},
        {"name": "rating", "type": "regression", "label": "rating"}]}},
     "model.user_tower: the tfrs baseline has no history sequence, got 'transformer'"),
    ({"model": {"item_id_dropout": 1.0}}, "model.item_id_dropout: must be at least 0 and below 1, got 1.0"),
    ({"model": {"item_id_dropout": -0.2}}, "model.item_id_dropout: must be at least 0 and below 1, got -0.2"),
    ({"model": {"type": "tfrs"}}, "the tfrs model has exactly the tutorial's tasks"),
    ({"text_encoder": {"mode": "thawed"}}, "text_encoder.mode: must be one of"),
    ({"text_encoder": {"backbone": {"num_layers": 1}}}, "text_encoder.backbone: needs exactly the keys"),
    ({"training": {"learning_rate": True}}, "training.learning_rate: expected float"),
    ({"features": [{"name": "device", "type": "ordinal"}]}, "features[0].type: must be one of"),
    ({"features": [{"name": "device", "source": "sessions"}]}, "features[0].source: must be one of"),
    ({"features": [{"name": "hour", "source": "users", "type": "timestamp"}]},
     "features[0].source: a timestamp part is a context feature"),
    ({"features": [{"name": "hour", "type": "timestamp", "part": "minute"}]}, "features[0].part: must be one of"),
    ({"features": [{"name": "price", "type": "numeric", "normalization": "minmax"}]},
     "features[0].normalization: must be one of"),
    ({"features": [{"name": "price", "type": "numeric", "normalization": "quantiles", "buckets": 1}]},
     "features[0].buckets: quantiles need at least 2 buckets"),
    ({"features": [{"name": "tags", "type": "multi_categorical", "separator": ""}]},
     "features[0].separator: required"),
    ({"features": [{"name": "author", "hash_buckets": -1}]}, "features[0].hash_buckets: must not be negative"),
    ({"features": [{"name": "title"}]}, "features[0].name: 'title' is already a column mtrec reads"),
    ({"features": [{"name": "clicked"}]}, "features[0].name: 'clicked' is already a column mtrec reads"),
    ({"features": [{"name": "tab"}, {"name": "tab", "source": "users"}]}, "duplicate feature name(s) ['tab']"),
    ({"features": [{"name": "tab", "colour": 1}]}, "features[0].colour: unknown key"),
    ({"evaluation": {"per_task": {"follow": {"min_auc": 0.5}}}},
     "evaluation.per_task.follow: not a binary or regression task"),
    ({"evaluation": {"per_task": {"click": {"max_rmse": 1.0}}}},
     "evaluation.per_task.click.max_rmse: a binary task's thresholds are ['min_auc', 'max_auc_decrease', "
     "'min_auc_lift', 'min_calibration', 'max_calibration']"),
    ({"evaluation": {"per_task": {"rating": {"min_calibration": 0.5}}}},
     "evaluation.per_task.rating.min_calibration: a regression task's thresholds are ['max_rmse', "
     "'max_rmse_increase']"),
    ({"evaluation": {"min_auc_lift": -0.1}}, "evaluation.min_auc_lift: must not be negative, got -0.1"),
    ({"evaluation": {"min_auc_lift": 0.5}}, "evaluation.min_auc_lift: must be below 0.5 (an AUC cannot exceed 1)"),
    ({"evaluation": {"min_calibration": 0}}, "evaluation.min_calibration: must be positive, got 0"),
    ({"evaluation": {"min_calibration": 1.1}},
     "evaluation: the band [min_calibration, max_calibration] must hold a calibrated model's 1.0, got [1.1, "),
    ({"evaluation": {"per_task": {"purchase": {"max_calibration": 0.9}}}},
     "evaluation.per_task.purchase: the band [min_calibration, max_calibration] must hold a calibrated model's "
     "1.0, got ["),
    ({"evaluation": {"per_task": {"click": {"min_auc_lift": 0.6}}}},
     "evaluation.per_task.click.min_auc_lift: must be below 0.5"),
    ({"evaluation": {"per_task": {"click": {"max_calibration": -2}}}},
     "evaluation.per_task.click.max_calibration: must be positive, got -2"),
    ({"evaluation": {"per_task": {"click": {"min_auc": 1.5}}}},
     "evaluation.per_task.click.min_auc: must be between 0 and 1"),
    ({"evaluation": {"per_task": {"rating": {"max_rmse_increase": -1}}}},
     "evaluation.per_task.rating.max_rmse_increase: must not be negative"),
    ({"features": [{"name": "age", "type": "numeric"}], "evaluation": {"slices": ["age", "tab"]}},
     "evaluation.slices: 'age' is not a declared categorical feature (one of [])"),
    ({"features": [{"name": "tab"}], "model": {"type": "tfrs", "tasks": [
        {"name": "retrieval", "type": "retrieval"}, {"name": "rating", "type": "regression", "label": "rating"}]}},
     "features: the tfrs baseline reads ids and history only"),
])
def test_cross_field_problems(values, expected):
    with pytest.raises(config.ConfigError, match=None) as raised:
        config.from_dict(values)
    assert expected in str(raised.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(config.ConfigError, match="configuration file not found"):
        config.load(str(tmp_path / "absent.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(str(bad))


def test_features_default_to_the_sources_own_and_can_be_watched():
    assert config.RunConfig(data=config.Data(source="csv", path="x")).features == []
    assert [f.name for f in config.RunConfig().features] == ["age_group", "tenure_days", "price", "device", "hour"]
    kuairand = config.from_dict({"data": {"source": "kuairand", "path": "x"}, "text_encoder": {"mode": "off"}})
    assert {"tab", "hour", "weekday", "user_active_degree", "author_id", "video_duration"} <= {
        f.name for f in kuairand.features}
    watched = config.from_dict({"data": {"source": "csv", "path": "x"},
                                "features": [{"name": "device"}, {"name": "hour", "type": "timestamp"}],
                                "validation": {"drift": {"device": 0.3}, "skew": {"device": 0.2}}})
    assert watched.validation.drift == {"device": 0.3} and watched.features[0] == config.Feature("device")
    assert watched.evaluation.slices == ["device"]  # the categorical context features by default
    assert config.RunConfig().evaluation.slices == ["device"]
    with pytest.raises(config.ConfigError, match="validation.skew.hour: not a feature the check can watch"):
        config.from_dict({"features": [{"name": "hour", "type": "timestamp"}], "validation": {"skew": {"hour": 0.2}}})


def test_the_student_is_the_runs_model_with_its_own_keys_and_round_trips(tmp_path):
    assert config.trained(config.RunConfig()) == config.RunConfig()  # no teacher: the run trains its own model
    values = {"model": {"embedding_dim": 64, "architecture": "ple"},
              "distillation": {"teacher": "latest_blessed", "student": {"embedding_dim": 16, "user_tower": "mean",
                                                                         "text_encoder": {"mode": "off"}}}}
    distilling = config.from_dict(values)
    student = config.trained(distilling)
    assert (student.model.embedding_dim, student.model.architecture, student.text_encoder.mode) == (16, "ple", "off")
    assert student.model.tasks == distilling.model.tasks
    assert (distilling.model.embedding_dim, distilling.text_encoder.mode) == (64, "frozen")  # the run's own stay
    assert config.from_dict(config.to_dict(distilling)) == distilling
    # The default student drops the text encoder and keeps the rest.
    default = config.trained(config.from_dict({"distillation": {"teacher": "latest_blessed"}}))
    assert default.text_encoder.mode == "off" and default.model == config.RunConfig().model
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "saved_model.pb").write_bytes(b"")
    assert config.from_dict({"distillation": {"teacher": str(teacher)}}).distillation.teacher == str(teacher)


def test_distillation_problems_are_named():
    with pytest.raises(config.ConfigError) as raised:
        config.from_dict({"training": {"warm_start": True}, "distillation": {
            "teacher": "/no/such/model", "hard_weight": 0, "soft_weight": 0, "temperature": 0,
            "student": {"embedding_dim": -1, "tasks": [], "type": "tfrs", "towers": 2,
                        "text_encoder": {"mode": "later"}}}})
    message = str(raised.value)
    for expected in ("distillation.teacher: '/no/such/model' is neither 'latest_blessed' nor the directory of a "
                     "SavedModel", "distillation.student.embedding_dim: must be positive, got -1",
                     "distillation.student.tasks: the student trains the run's tasks",
                     "distillation.student.type: the student is an mtrec model",
                     "distillation.student.towers: unknown key",
                     "distillation.student.text_encoder.mode: must be one of",
                     "distillation.temperature: must be positive",
                     "distillation: hard_weight and soft_weight are both 0",
                     "training.warm_start: a distillation run resolves its teacher from the Trainer's base model"):
        assert expected in message
    assert message.count("embedding_dim: must be positive") == 1
