"""Configuration: defaults, YAML overrides, and every problem listed at once."""

from __future__ import annotations

import pytest

from pipeline import config


def test_defaults_validate_and_round_trip():
    defaults = config.RunConfig()
    assert config.from_dict(config.to_dict(defaults)) == defaults


def test_yaml_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  epochs: 7\nmodel:\n  architecture: ple\n  tasks:\n"
                    "    - {name: retrieval, type: retrieval, label: null, weight: 0.5}\n"
                    "    - {name: liked, type: binary, label: clicked}\n")
    loaded = config.load(str(path))
    assert loaded.training.epochs == 7
    assert loaded.training.batch_size == config.Training().batch_size
    assert loaded.model.architecture == "ple" and loaded.model.num_experts == config.Model().num_experts
    assert loaded.model.tasks == [config.Task("retrieval", "retrieval", None, 0.5),
                                  config.Task("liked", "binary", "clicked", 1.0)]


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
    ({"model": {"tasks": [{"name": "buy", "type": "binary", "label": "purchased"}]}},
     "model.tasks[0].label: a binary task takes its label from one of ['clicked'], got 'purchased'"),
    ({"model": {"tasks": [{"name": "rating", "type": "regression"}]}}, "model.tasks[0].label"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "clicked", "weight": 0}]}}, "at least one task"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "clicked"}] * 2}}, "duplicate task name(s) ['a']"),
    ({"model": {"tasks": [{"name": "a", "type": "binary", "label": "clicked", "colour": 1}]}},
     "model.tasks[0].colour: unknown key"),
    ({"model": {"tasks": {"name": "a"}}}, "model.tasks: expected a list"),
    ({"model": {"expert_units": [64, 0]}}, "model.expert_units: must be a non-empty list of positive numbers"),
    ({"model": {"architecture": "moe"}}, "model.architecture: must be one of"),
    ({"model": {"type": "tfrs"}}, "the tfrs model has exactly the tutorial's tasks"),
    ({"text_encoder": {"mode": "thawed"}}, "text_encoder.mode: must be one of"),
    ({"text_encoder": {"backbone": {"num_layers": 1}}}, "text_encoder.backbone: needs exactly the keys"),
    ({"training": {"learning_rate": True}}, "training.learning_rate: expected float"),
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
