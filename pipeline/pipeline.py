"""create_pipeline: the mtrec TFX pipeline, as a straight list of wired components."""

from __future__ import annotations

import json
from typing import Any

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.artifacts import ValidatedStatistics
from components.data_gate.component import DataGate
from components.data_validator.component import DataValidator
from components.evaluator.component import Evaluator
from components.example_gen.component import EventsExampleGen
from components.pusher.component import Pusher
from components.retrieval_evaluator.component import RetrievalEvaluator
from components.serving_check.component import ServingCheck

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
DATA_GATE_ID = "DataGate"


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    schema_path: str,
    serving_model_dir: str,
    example_gen_args: dict[str, Any],
    transform_config: dict[str, Any],
    trainer_config: dict[str, Any],
    eval_config: tfma.EvalConfig,
    retrieval_settings: dict[str, Any] | None,
    max_bad_fraction: float,
    code_version: str,
    metadata_connection_config: Any | None = None,
    beam_pipeline_args: list[str] | None = None,
    baseline: bool = True,
    base_model: bool = False,
    raw_examples: bool = False,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline; every setting arrives as an explicit argument.

    `code_version` fingerprints mtrec's code; it is part of the properties of every component that runs mtrec
    code, so a cached artifact is reused only by the code that wrote it. `baseline`: whether Resolvers hand the
    Evaluator the latest blessed model for the change thresholds, and DataValidator the last validated statistics
    for the drift check; without them only the absolute thresholds and the schema and skew checks apply (for
    orchestrators that cannot run a Resolver, such as open-source Kubeflow Pipelines). `retrieval_settings`: the
    RetrievalEvaluator's (pipeline.evaluation.retrieval_settings); None leaves it out (no retrieval task).
    `base_model`: the Trainer receives the latest blessed model as its base model, the base of a warm start or the
    teacher of a distillation (needs `baseline`). `raw_examples`: the Trainer reads ExampleGen's examples and
    transforms each batch itself, as a distilling one does (models.distillation), so Transform materializes none.
    """
    if base_model and not baseline:
        raise ValueError("the Trainer's base model is the latest blessed model, which needs the baseline Resolver")
    # Joins events with item text, adds user history, splits train/eval.
    example_gen = EventsExampleGen(input_base=data_root, code_version=code_version, **example_gen_args)
    # The curated, checked-in schema.
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    # Statistics of every split; the schema makes categorical ints (clicked) categorical, as drift and skew need.
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"],
                                                  schema=schema_gen.outputs["schema"])
    # The statistics of the last run whose data passed the gate: the baseline of the drift check.
    baseline_statistics = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(type=ValidatedStatistics),
    ).with_id("latest_validated_statistics_resolver") if baseline else None
    # Anomalies against the schema, drift against the baseline, skew between train and eval ...
    data_validator = DataValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        baseline_statistics=baseline_statistics.outputs["statistics"] if baseline_statistics else None)
    # ... and too many quarantined rows stop the run before any preprocessing or training.
    data_gate = DataGate(
        examples=example_gen.outputs["examples"], statistics=statistics_gen.outputs["statistics"],
        anomalies=data_validator.outputs["anomalies"], max_bad_fraction=max_bad_fraction).with_id(DATA_GATE_ID)
    # Vocabularies, WordPiece tokenization and labels, inside the graph.
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={**transform_config, "code_version": code_version},
        materialize=not raw_examples,
        # Transform's own pre- and post-transform statistics go unused (StatisticsGen's feed the checks and the
        # report), and computing them held the data in memory: 5.4 GB at 1M events instead of 1.8 GB.
        disable_statistics=True,
    )
    transform.add_upstream_node(data_gate)
    # The latest blessed model: the baseline of the change thresholds (and the base of a warm start, or the teacher).
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver") if baseline else None
    # The Keras 3 multi-task model, exported with the Transform graph inside; warm started from the latest blessed,
    # or distilled from a teacher.
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"] if raw_examples else transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=model_resolver.outputs["model"] if base_model else None,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={**trainer_config, "code_version": code_version},
    )
    # Per-task metrics on raw eval examples; blesses the model when every threshold holds, each task's trivial
    # baseline (the train-mean predictor, the random ranker, calibration 1) included.
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"] if model_resolver else None,
        eval_config=eval_config,
    )
    # Full-catalogue Recall@K of the `retrieve` signature, per slice, against the most popular items and the latest
    # blessed model; blesses the model when the gate holds.
    retrieval_evaluator = RetrievalEvaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"] if model_resolver else None,
        settings=json.dumps(retrieval_settings), code_version=code_version) if retrieval_settings else None
    # Blesses the model for serving only when TF Serving registers every op of its graphs.
    serving_check = ServingCheck(model=trainer.outputs["model"])
    # Copies a model blessed by all three into a versioned serving directory, unless it is already the newest there.
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        retrieval_evaluation=retrieval_evaluator.outputs["evaluation"] if retrieval_evaluator else None,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[component for component in (
            example_gen, schema_gen, statistics_gen, baseline_statistics, data_validator, data_gate, transform,
            model_resolver, trainer, evaluator, retrieval_evaluator, serving_check, pusher) if component is not None],
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or ["--direct_num_workers=1"],
    )
