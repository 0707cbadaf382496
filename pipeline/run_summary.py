"""What a finished run produced, read back from ML Metadata: per-task metrics, blessing, pushed model."""

from __future__ import annotations

import json
import os
from typing import Any

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from ml_metadata.proto import metadata_store_pb2

from components.artifacts import RetrievalEvaluation
from components.evaluator import executor as evaluator_executor
from components.example_gen import executor as example_gen_executor
from components.example_gen import window
from components.retrieval_evaluator import component as retrieval_evaluator
from components.retrieval_evaluator import metrics as retrieval_metrics
from components.serving_check.component import REPORT_FILE

PIPELINE_RUN_CONTEXT = "pipeline_run"
OVERALL = "overall"


def open_store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _latest_run(store: mlmd.MetadataStore) -> Any:
    return max(store.get_contexts_by_type(PIPELINE_RUN_CONTEXT), key=lambda c: (c.create_time_since_epoch, c.id))


def latest_run_artifacts(store: mlmd.MetadataStore) -> dict[str, list[Any]]:
    """Artifacts of the newest pipeline run in `store`, by type name (each output directory holds one pipeline)."""
    latest = _latest_run(store)
    by_type: dict[str, list[Any]] = {}
    types = {t.id: t.name for t in store.get_artifact_types()}
    for artifact in store.get_artifacts_by_context(latest.id):
        by_type.setdefault(types[artifact.type_id], []).append(artifact)
    return by_type


def produced_by(artifacts: dict[str, list[Any]], type_name: str, component: str) -> Any | None:
    """The newest artifact of `type_name` that `component` wrote (artifact URIs are root/component/key/id)."""
    found = [a for a in artifacts.get(type_name, []) if f"/{component}/" in a.uri]
    return found[-1] if found else None


def sibling_output(store: mlmd.MetadataStore, artifact: Any, type_name: str) -> Any | None:
    """The output of type `type_name` of the execution that produced `artifact` (e.g. a Model's ModelRun).

    A cached Trainer's model keeps its original ModelRun, which the newer run's context does not list.
    """
    outputs = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    producers = [e.execution_id for e in store.get_events_by_artifact_ids([artifact.id]) if e.type in outputs]
    if not producers:
        return None
    ids = [e.artifact_id for e in store.get_events_by_execution_ids(producers[-1:]) if e.type in outputs]
    types = {t.id: t.name for t in store.get_artifact_types()}
    found = [a for a in store.get_artifacts_by_id(ids) if types[a.type_id] == type_name]
    return found[-1] if found else None


def evaluator_baseline(store: mlmd.MetadataStore) -> str | None:
    """The URI of the model the newest run's Evaluator compared with (its `baseline_model` input), if any."""
    executions = [e.id for e in store.get_executions_by_context(_latest_run(store).id)]
    inputs = [event.artifact_id for event in store.get_events_by_execution_ids(executions)
              if event.type == metadata_store_pb2.Event.INPUT and event.path.steps
              and event.path.steps[0].key == "baseline_model"]
    return store.get_artifacts_by_id(inputs[-1:])[0].uri if inputs else None


def has_blessed_model(metadata_path: str) -> bool:
    """Whether ML Metadata at `metadata_path` holds a Model that an Evaluator blessed: what the latest blessed model
    Resolver (tfx LatestBlessedModelStrategy) looks for. False where no run has written it yet."""
    if not os.path.exists(metadata_path):
        return False
    store = open_store(metadata_path)
    blessed = {artifact_property(blessing, "current_model_id")
               for blessing in store.get_artifacts_by_type("ModelBlessing")
               if artifact_property(blessing, "blessed") == 1}
    return any(model.id in blessed for model in store.get_artifacts_by_type("Model"))


def split_names(artifact: Any) -> list[str]:
    return json.loads(artifact.properties["split_names"].string_value)


def artifact_property(artifact: Any, name: str) -> Any:
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return value.int_value if value.HasField("int_value") else value.string_value


def slice_name(slice_key: Any) -> str:
    """"overall", or "feature=value" for a single-feature slice."""
    parts = []
    for key in slice_key.single_slice_keys:
        value = key.bytes_value.decode() if key.HasField("bytes_value") else (
            key.int64_value if key.HasField("int64_value") else key.float_value)
        parts.append(f"{key.column}={value}")
    return ", ".join(parts) or OVERALL


def evaluation_metrics(uri: str) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Metrics of a ModelEvaluation artifact: {slice: {model: {output name: {metric: value}}}}.

    The model is "candidate" (the new model) or "baseline" (the latest blessed one, when there was one).
    """
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for slice_metrics in tfma.load_metrics(uri):
        by_model = metrics.setdefault(slice_name(slice_metrics.slice_key), {})
        for entry in slice_metrics.metric_keys_and_values:
            if entry.key.is_diff or not entry.value.HasField("double_value"):
                continue
            model = entry.key.model_name or tfma.CANDIDATE_KEY
            output = entry.key.output_name or "all"
            by_model.setdefault(model, {}).setdefault(output, {})[entry.key.name] = round(
                entry.value.double_value.value, 4)
    return metrics


def failed_validations(uri: str) -> list[str]:
    result = tfma.load_validation_result(uri)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            threshold = text_format.MessageToString(failure.metric_threshold, as_one_line=True)
            failures.append(f"{key.output_name}/{key.name}{' (change vs baseline)' if key.is_diff else ''}: "
                            f"{failure.metric_value.double_value.value:.4f} fails {threshold}")
    return failures


def trivial_baselines(uri: str) -> dict[str, dict[str, float]]:
    """The trivial baselines the Evaluator wrote beside a ModelEvaluation ({} for an evaluation without them)."""
    path = os.path.join(uri, evaluator_executor.TRIVIAL_BASELINES_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def failed_baseline_checks(uri: str, baselines: dict[str, dict[str, float]]) -> dict[str, str]:
    """"output/metric" -> what failed, for each trivial-baseline check that failed: an RMSE not below the
    train-mean predictor's, an AUC not above the random ranker's, a calibration outside its band."""
    failed = {}
    for per_slice in tfma.load_validation_result(uri).metric_validations_per_slice:
        for failure in per_slice.failures:
            key, value = failure.metric_key, failure.metric_value.double_value.value
            baseline, bounds = baselines.get(key.output_name, {}), failure.metric_threshold.value_threshold
            if key.is_diff or key.name not in baseline:
                continue
            if key.name == "root_mean_squared_error" and value > baseline[key.name]:
                message = f"RMSE {value:.3f} is not below the train-mean predictor's {baseline[key.name]:.3f}"
            elif key.name == "auc" and value <= baseline[key.name]:
                message = f"AUC {value:.3f} does not beat the random ranker's {baseline[key.name]:g}"
            elif key.name == "calibration":
                message = (f"calibration {value:.3f} is outside [{bounds.lower_bound.value:g}, "
                           f"{bounds.upper_bound.value:g}] (a calibrated model's is {baseline[key.name]:g})")
            else:
                continue
            failed[f"{key.output_name}/{key.name}"] = f"{key.output_name}: {message}"
    return failed


def summarise(metadata_path: str) -> dict[str, Any]:
    store = open_store(metadata_path)
    artifacts = latest_run_artifacts(store)
    summary: dict[str, Any] = {}
    for evaluation in artifacts.get("ModelEvaluation", [])[-1:]:
        by_model = evaluation_metrics(evaluation.uri)[OVERALL]
        summary["metrics"] = by_model.get(tfma.CANDIDATE_KEY, {})
        if tfma.BASELINE_KEY in by_model:
            summary["baseline_metrics"] = by_model[tfma.BASELINE_KEY]
        summary["failed_thresholds"] = failed_validations(evaluation.uri)
        summary["trivial_baselines"] = trivial_baselines(evaluation.uri)
        summary["failed_baseline_checks"] = failed_baseline_checks(evaluation.uri, summary["trivial_baselines"])
    for blessing in artifacts.get("ModelBlessing", [])[-1:]:
        summary["blessed"] = bool(artifact_property(blessing, "blessed"))
    for blessing in artifacts.get("InfraBlessing", [])[-1:]:
        with open(os.path.join(blessing.uri, REPORT_FILE), encoding="utf-8") as handle:
            report = json.load(handle)
        summary["serving_check"] = {"passed": report["passed"], "disallowed_ops": report["disallowed_ops"]}
    for evaluation in artifacts.get(RetrievalEvaluation.TYPE_NAME, [])[-1:]:
        report = retrieval_evaluator.load_report(evaluation.uri)
        summary["retrieval"] = {key: report[key] for key in ("blessed", "failures", "gate", "exclude_history", "slices",
                                                             "seconds")}
    summary["pushed"] = False
    for pushed in artifacts.get("PushedModel", [])[-1:]:
        summary["pushed"] = bool(artifact_property(pushed, "pushed"))
        if summary["pushed"]:
            summary["pushed_to"] = artifact_property(pushed, "pushed_destination")
    for model in artifacts.get("Model", [])[-1:]:
        summary["model"] = model.uri
        distilled = distillation_report(model.uri)
        if distilled:
            baseline = evaluator_baseline(store)
            summary["distillation"] = {**distilled, "teacher_is_baseline": distilled["teacher_artifact"] == baseline}
    for model_run in artifacts.get("ModelRun", [])[-1:]:
        carried = warm_start_report(model_run.uri)
        if carried:
            summary["warm_start"] = carried
    summary["failed_checks"] = failed_checks(summary)
    return summary


def window_of(summary: dict[str, Any]) -> window.Window | None:
    """The window of daily partitions a run read (its summary's `input.window`), if it read one."""
    read = summary.get("input", {}).get("window")
    return window.Window(tuple(read["days"]), tuple(read["skipped"])) if read else None


def warm_start_report(model_run_uri: str) -> dict[str, Any] | None:
    """What the Trainer's warm start carried (models/warm_start.CarryReport), if it warm started."""
    from models.trainer import WARM_START_FILE

    path = os.path.join(model_run_uri, WARM_START_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def directory_bytes(path: str) -> int:
    """Bytes of every file under the local directory `path`."""
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _megabytes(directory: str) -> float | None:
    """The size on disk of a local directory's files; None where it is not a local directory (gs://...)."""
    return round(directory_bytes(directory) / 2**20, 2) if os.path.isdir(directory) else None


def distillation_report(model_uri: str) -> dict[str, Any] | None:
    """A student's teacher and settings (models/distillation.RECORD_FILE), with both SavedModels' sizes in MB and
    the teacher's Model artifact directory; None for a model trained without a teacher."""
    from tfx.utils import path_utils

    from models import distillation, warm_start

    record = distillation.read_record(model_uri)
    if record is None:
        return None
    teacher_artifact = warm_start.artifact_dir(record["teacher"])

    return {**record, "student_mb": _megabytes(path_utils.serving_model_path(model_uri)),
            "teacher_mb": _megabytes(record["teacher"]), "teacher_artifact": teacher_artifact}


def quarantine(metadata_path: str) -> dict[str, Any]:
    """The quarantine of the newest run's input: {"quarantine": {file: row counts}, "quarantine_file": path},
    from its ExampleGen's Examples artifact (empty when ExampleGen did not finish)."""
    if not os.path.isfile(metadata_path):
        return {}
    examples = produced_by(latest_run_artifacts(open_store(metadata_path)), "Examples", "EventsExampleGen")
    counts = artifact_property(examples, example_gen_executor.ROW_COUNTS_PROPERTY) if examples else None
    if not counts:
        return {}
    return {"quarantine": json.loads(counts),
            "quarantine_file": os.path.join(examples.uri, example_gen_executor.QUARANTINE_DIR,
                                            example_gen_executor.QUARANTINE_FILE)}


def failed_checks_of_error(error: BaseException) -> list[str]:
    """Which check stopped a failed run: the data gate (quarantine share, schema, drift, skew), or none (the run
    failed for another reason, named in its error)."""
    text = str(error)
    if "DataAnomaliesError" in text or "the data is not fit to train on" in text:
        return ["data gate"]
    return []


def failed_checks(summary: dict[str, Any]) -> list[str]:
    """Which checks kept a finished run's model from being pushed."""
    checks = []
    failures = summary.get("failed_thresholds", [])
    named = summary.get("failed_baseline_checks", {})
    if any("change vs baseline" not in failure and failure.split(":")[0] not in named for failure in failures):
        checks.append("evaluator thresholds")
    checks.extend(named.values())
    if any("change vs baseline" in failure for failure in failures):
        checks.append("change thresholds against the latest blessed model")
    if summary.get("retrieval") and not summary["retrieval"]["blessed"]:
        checks.append("retrieval gate")
    if summary.get("serving_check") and not summary["serving_check"]["passed"]:
        checks.append("serving check")
    return checks


def failure_reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def format_summary(summary: dict[str, Any]) -> str:
    """The few lines `mtrec run` ends with."""
    lines = [f"mtrec: run {summary['status']} in {summary.get('seconds', '?')} s ({summary['output_dir']})"]
    read = window_of(summary)
    if read:
        lines.append(f"  window {read.describe()}")
    carried = summary.get("warm_start")
    if carried:
        tables = "; ".join(f"{name} {rows['known']} known ids, {rows['new']} new"
                           for name, rows in carried["tables"].items() if name in ("user_id_embedding",
                                                                                   "item_id_embedding"))
        lines.append(f"  warm started from {carried['base_dir']} ({tables}; {len(carried['dense'])} other weights "
                     f"carried, {len(carried['not_carried'])} not: see the Trainer's warm_start.json)")
    distilled = summary.get("distillation")
    if distilled:
        lines.append(f"  distilled from teacher {distilled['teacher']} (soft losses: "
                     f"{', '.join(distilled['soft_targets']) or 'none'}; SavedModel {distilled['student_mb']} MB, "
                     f"the teacher's {distilled['teacher_mb']} MB)")
    for output, values in sorted(summary.get("metrics", {}).items()):
        shown = ", ".join(f"{name} {value:g}" for name, value in sorted(values.items()))
        lines.append(f"  {output}: {shown}")
    for output, values in sorted(summary.get("baseline_metrics", {}).items()):
        shown = ", ".join(f"{name} {value:g}" for name, value in sorted(values.items()) if name != "example_count")
        which = "the teacher, " if summary.get("distillation", {}).get("teacher_is_baseline") else ""
        lines.append(f"  {output} of the baseline ({which}latest blessed model): {shown}")
    for output, baseline in sorted(summary.get("trivial_baselines", {}).items()):
        if "train_mean" in baseline:
            lines.append(f"  {output} of the train-mean predictor ({baseline['train_mean']:.4g}): "
                         f"root_mean_squared_error {baseline['root_mean_squared_error']:.4g}")
    if "blessed" in summary:
        lines.append(f"  model {'BLESSED' if summary['blessed'] else 'NOT blessed'} by the Evaluator")
    for failure in summary.get("failed_thresholds", []):
        lines.append(f"    failed: {failure}")
    lines.extend(_retrieval_lines(summary.get("retrieval")))
    check = summary.get("serving_check")
    if check and not check["passed"]:
        lines.append(f"  serving check FAILED: ops not in TF Serving: {', '.join(check['disallowed_ops'])}")
    elif check:
        lines.append("  serving check passed: TF Serving registers every op of the model")
    if summary.get("pushed"):
        lines.append(f"  pushed to {summary['pushed_to']}")
    elif summary["status"] == "succeeded":
        lines.append(f"  NOT pushed: {', '.join(summary.get('failed_checks') or ['a check'])} failed (above), so the "
                     "serving directory is unchanged")
    for name, counts in sorted(summary.get("input", {}).get("quarantine", {}).items()):
        if counts["quarantined"]:
            lines.append(f"  {name}: {counts['quarantined']} of {counts['rows']} rows quarantined, see "
                         f"{summary['input']['quarantine_file']}")
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    return "\n".join(lines)


def _retrieval_lines(retrieval: dict[str, Any] | None) -> list[str]:
    """The retrieval gate's figures at its cutoff: overall against the baselines, and the cold and new slices."""
    if not retrieval:
        return []
    metric = f"recall@{retrieval['gate']['cutoff']}"
    slices = retrieval["slices"]
    overall = slices[retrieval_metrics.OVERALL]
    beside = [f"{label} {overall[source][metric]:.4f}" for source, label in (
        (retrieval_metrics.POPULARITY, "most popular items"), (retrieval_metrics.BASELINE, "latest blessed model"))
        if overall.get(source)]
    lines = [f"  retrieval: Recall@{retrieval['gate']['cutoff']} {overall[retrieval_metrics.MODEL][metric]:.4f} over "
             f"{overall['examples']} eval events ({', '.join(beside)})"]
    for name in ("item_popularity=cold", "user_activity=new"):
        if slices.get(name, {}).get(retrieval_metrics.MODEL):
            lines.append(f"    {name}: {slices[name][retrieval_metrics.MODEL][metric]:.4f} over "
                         f"{slices[name]['examples']} events (most popular items "
                         f"{slices[name][retrieval_metrics.POPULARITY][metric]:.4f})")
    lines.append(f"  model {'BLESSED' if retrieval['blessed'] else 'NOT blessed'} by the retrieval gate")
    lines.extend(f"    failed: {failure}" for failure in retrieval["failures"])
    return lines
