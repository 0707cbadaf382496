"""The `mtrec` command: run the pipeline, generate or convert data."""

from __future__ import annotations

import argparse
import json
import os
import sys

from components.example_gen.input_contract import InputError
from pipeline import config as config_lib
from pipeline import kubeflow as kubeflow_lib
from pipeline import native_logs
from serving import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MODEL_NAME


def _run(args: argparse.Namespace) -> int:
    """Progress lines and a human summary on a terminal; with --quiet or when piped, only the JSON summary."""
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines
    from models.trainer import PROGRESS_ENV
    from pipeline import local_runner, run_summary

    config = config_lib.load(args.config)
    if args.output_dir:
        config.output_dir = args.output_dir
    if args.data_day:
        config = config_lib.with_data_day(config, args.data_day)
    progress = sys.stderr.isatty() and not args.quiet
    human = sys.stdout.isatty() and not args.quiet
    os.environ[PROGRESS_ENV] = "bar" if progress else "none"
    try:
        summary = local_runner.run(config, verbose=args.verbose, progress=progress)
    except local_runner.RunFailedError as error:
        print(f"mtrec: run failed: {error}", file=sys.stderr)
        if error.summary.get("report"):
            print(f"mtrec: report: {error.summary['report']}", file=sys.stderr)
        return 1
    print(run_summary.format_summary(summary) if human else json.dumps(summary, sort_keys=True))
    return 0


def _compile_kubeflow(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines
    config = config_lib.load(args.config)
    target = kubeflow_lib.options(config, args.image, args.pipeline_root, args.data_root, args.serving_dir,
                                  args.platform, args.output)
    path = kubeflow_lib.compile_pipeline(config, target)
    print(f"mtrec: wrote {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pipeline import report

    try:
        path = report.write(args.run_dir, output_path=args.output)
    except FileNotFoundError as error:
        print(f"mtrec: error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from pipeline.data import synthetic

    events, items, users = synthetic.generate(args.output)
    print(f"mtrec: wrote {events}, {items} and {users}")
    return 0


def _convert_movielens(args: argparse.Namespace) -> int:
    from pipeline.data import movielens

    events, items, users = movielens.convert(args.data, args.output)
    print(f"mtrec: wrote {events}, {items} and {users}")
    return 0


def _convert_kuairand(args: argparse.Namespace) -> int:
    from pipeline.data import kuairand

    converted = kuairand.convert(args.data, args.output)
    print(f"mtrec: wrote {converted.events} ({converted.events_written} events), {converted.items} and "
          f"{converted.users}")
    if converted.events_unconverted:
        print(f"mtrec: {converted.events_unconverted} exposures without a video duration (no watch ratio) are in "
              f"{converted.unconverted}")
    return 0


def _partition_days(args: argparse.Namespace) -> int:
    from pipeline.data import partitions

    days = partitions.write_daily(args.input, args.output, args.utc_offset_hours)
    print(f"mtrec: wrote {len(days)} day files, {days[0]} to {days[-1]}, to "
          f"{os.path.join(args.output, 'events')}, beside the item and user tables")
    return 0


def _check_serving(args: argparse.Namespace) -> int:
    import tensorflow_text  # noqa: F401  (registers the TF Text ops, so their graphs parse)

    from components.serving_check import ops

    try:
        report = ops.check(args.model_dir)
    except FileNotFoundError as error:
        print(f"mtrec: error: {error}", file=sys.stderr)
        return 2
    print(report.describe())
    return 0 if report.passed else 1


def _serve(args: argparse.Namespace) -> int:
    import logging
    import time

    from serving.server import ModelServer

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    server = ModelServer(args.model_dir, host=args.host, port=args.port, model_name=args.model_name,
                         max_batch_size=args.max_batch_size).start()
    if server.repository.current is None:
        print(f"mtrec serve: no loadable version under {args.model_dir} yet; waiting for one", file=sys.stderr)
    print(f"mtrec serve: http://{args.host}:{server.port}/v1/models/{args.model_name}", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from serving import client

    try:
        items = client.recommend(args.url, args.user, args.k, args.history.split(",") if args.history else None,
                                 not args.include_history, args.model_name)
    except client.ServingError as error:
        print(f"mtrec: error: {error}", file=sys.stderr)
        return 1
    for rank, (item, score) in enumerate(items, start=1):
        print(f"{rank:3d}  {item}  {score:.4f}")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    if args.name == "serving":
        from benchmarks import serving

        report = serving.run(args.output, requests=args.requests)
        print(json.dumps(report["targets_met"]))
        print(f"mtrec: wrote {os.path.join(args.output, 'serving.json')} and serving.md")
    elif args.name == "movielens":
        import tempfile

        from benchmarks import movielens

        if not args.data:
            raise InputError("benchmark movielens: --data DIR (the GroupLens ML-100K files, or events.csv and "
                             "items.csv in the CSV contract) is required")
        with tempfile.TemporaryDirectory(prefix="mtrec-movielens-") as work_dir:
            data = movielens.load(args.data, work_dir)
            report = movielens.run(data.events, data.items, data.items_path, work_dir,
                                   log=lambda line: print(f"mtrec: {line}", flush=True), users=data.users,
                                   dataset=data.name)
        print(json.dumps(report["targets"], indent=2))
        print("mtrec: wrote " + ", ".join(movielens.write(report, args.output, data.report_name)))
    elif args.name == "kuairand":
        _kuairand(args)
    elif args.name == "continuous":
        _continuous(args)
    elif args.name == "scale":
        _scale(args)
    elif args.name == "reliability":
        _reliability(args)
    elif args.name == "retrieval-gate":
        _retrieval_gate(args)
    elif args.name == "distillation":
        _distillation(args)
    return 0


def _kuairand(args: argparse.Namespace) -> None:
    import tempfile

    from benchmarks import kuairand

    if not args.data:
        raise InputError("benchmark kuairand: --data DIR (the KuaiRand-Pure files) is required")
    run, name = ((kuairand.run_user_behaviour, "kuairand-user-behaviour") if args.user_behaviour
                 else (kuairand.run, "kuairand"))
    with tempfile.TemporaryDirectory(prefix="mtrec-kuairand-") as work_dir:
        report = run(args.data, work_dir, log=lambda line: print(f"mtrec: {line}", flush=True))
    print(json.dumps(report["targets"], indent=2))
    print("mtrec: wrote " + ", ".join(kuairand.write(report, args.output, name)))


def _continuous(args: argparse.Namespace) -> None:
    import tempfile

    from benchmarks import continuous

    if not args.data:
        raise InputError("benchmark continuous: --data DIR (the KuaiRand-Pure files) is required")
    with tempfile.TemporaryDirectory(prefix="mtrec-continuous-") as work_dir:
        report = continuous.run(args.data, work_dir, log=lambda line: print(f"mtrec: {line}", flush=True))
    print(json.dumps(report["targets"], indent=2))
    print("mtrec: wrote " + ", ".join(continuous.write(report, args.output)))


def _reliability(args: argparse.Namespace) -> None:
    import tempfile

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the WordPiece ops of the Transform graph)

    from benchmarks import reliability, small_model

    def log(line: str) -> None:
        print(f"mtrec: {line}", flush=True)

    with tempfile.TemporaryDirectory(prefix="mtrec-reliability-model-") as work_dir:
        log("exporting a small model for the serving request cases")
        _, model_dir = small_model.build(work_dir)
        model = tf.saved_model.load(model_dir)
        report = reliability.run(dict(model.signatures), with_kill=not args.quick, log=log)
    print(json.dumps({key: value for key, value in report.items() if not isinstance(value, list | str)}, indent=2))
    print("mtrec: wrote " + ", ".join(reliability.write(report, args.output)))


def _scale(args: argparse.Namespace) -> None:
    from benchmarks import scale

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by every stage's process
    report = scale.run(args.sizes or scale.SIZES, scale.benchmark_config(args.config), args.work_dir,
                       log=lambda line: print(f"mtrec: {line}", flush=True))
    print(json.dumps(report["targets"], indent=2))
    print("mtrec: wrote " + ", ".join(scale.write(report, args.output)))


def _retrieval_gate(args: argparse.Namespace) -> None:
    from benchmarks import retrieval_gate

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by every run's process
    report = retrieval_gate.run(args.work_dir, log=lambda line: print(f"mtrec: {line}", flush=True))
    print(json.dumps(report["targets"], indent=2))
    print("mtrec: wrote " + ", ".join(retrieval_gate.write(report, args.output)))


def _distillation(args: argparse.Namespace) -> None:
    import tempfile

    from benchmarks import distillation

    if not args.data:
        raise InputError("benchmark distillation: --data DIR (the GroupLens ML-100K files, events.csv and items.csv "
                         "in the CSV contract, or the KuaiRand-Pure files) is required")
    with tempfile.TemporaryDirectory(prefix="mtrec-distillation-") as work_dir:
        report = distillation.run(args.data, work_dir, distillation.Settings(requests=args.requests),
                                  log=lambda line: print(f"mtrec: {line}", flush=True))
    print(json.dumps(report["targets"], indent=2))
    print("mtrec: wrote " + ", ".join(distillation.write(report, args.output)))


def _sizes(text: str) -> tuple[int, ...]:
    """`--sizes`: two or more event counts, comma-separated."""
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number list such as 100000,1000000") from None
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: at least two different sizes, to compare")
    if sizes[0] < 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: each size at least 1,000 events")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mtrec", description="Multi-task recommender on TFX.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline (default: built-in synthetic data)")
    run.add_argument("--config", help="YAML configuration (see docs/configuration.md); defaults apply to what it "
                                      "leaves out")
    run.add_argument("--output-dir", help="overrides the configuration's output_dir")
    run.add_argument("--data-day", metavar="YYYY-MM-DD",
                     help="the last day of the window of daily partitions (data.day; needs data.window_days): what a "
                          "scheduler passes each day")
    run.add_argument("--verbose", action="store_true", help="show all of TFX's and Beam's logs")
    run.add_argument("--quiet", action="store_true", help="no progress; print only the summary, as JSON")
    run.set_defaults(handler=_run)
    compile_ = commands.add_parser("compile", help="compile the pipeline for an orchestrator")
    targets = compile_.add_subparsers(dest="target", required=True)
    kubeflow = targets.add_parser("kubeflow", help="a Kubeflow Pipelines v2 spec (Vertex AI Pipelines or a KFP "
                                                   "cluster), with TFX's KubeflowV2DagRunner")
    kubeflow.add_argument("--image", required=True, help="the pipeline image (built from the Dockerfile)")
    kubeflow.add_argument("--pipeline-root", required=True,
                          help="artifacts root every pod reads and writes (gs://... or a mounted absolute path)")
    kubeflow.add_argument("--config", help="YAML configuration, as for `mtrec run`")
    kubeflow.add_argument("--data-root", help="shared directory with events.csv and items.csv "
                                              "(default: data.path of a csv source)")
    kubeflow.add_argument("--serving-dir", help="where Pusher writes versions (default: PIPELINE_ROOT/serving)")
    kubeflow.add_argument("--platform", choices=kubeflow_lib.PLATFORMS, default="vertex",
                          help="vertex: Vertex AI Pipelines, the whole pipeline; kfp: open-source Kubeflow "
                               "Pipelines, without the baseline Resolvers it cannot run")
    kubeflow.add_argument("--output", help="pipeline.json (a PipelineJob) for vertex, pipeline.yaml (a "
                                           "PipelineSpec) for kfp")
    kubeflow.set_defaults(handler=_compile_kubeflow)
    report = commands.add_parser("report", help="write the HTML report of the latest run in RUN_DIR")
    report.add_argument("run_dir", help="the run's output_dir")
    report.add_argument("--output", help="where to write the page (default: RUN_DIR/report.html)")
    report.set_defaults(handler=_report)
    generate = commands.add_parser("generate", help="write the synthetic dataset (events.csv, items.csv, users.csv)")
    generate.add_argument("--output", required=True)
    generate.set_defaults(handler=_generate)
    convert = commands.add_parser("convert-movielens", help="convert MovieLens 100K into the CSV contract")
    convert.add_argument("--data", required=True, help="directory with u.data, u.item, u.genre")
    convert.add_argument("--output", required=True)
    convert.set_defaults(handler=_convert_movielens)
    convert_kuairand = commands.add_parser(
        "convert-kuairand", help="convert KuaiRand-Pure into the CSV contract (events, items, users)")
    convert_kuairand.add_argument("--data", required=True,
                                  help="directory with the log_*.csv standard logs and the user and video tables")
    convert_kuairand.add_argument("--output", required=True)
    convert_kuairand.set_defaults(handler=_convert_kuairand)
    partition = commands.add_parser(
        "partition-days", help="split a directory's events.csv into daily partitions, events/YYYY-MM-DD.csv, for "
                               "data.window_days (docs/continuous-training.md)")
    partition.add_argument("--input", required=True, help="directory with events.csv, items.csv (and users.csv)")
    partition.add_argument("--output", required=True)
    partition.add_argument("--utc-offset-hours", type=float, default=0.0,
                           help="the time zone whose calendar days the partitions follow (KuaiRand: 8)")
    partition.set_defaults(handler=_partition_days)
    check = commands.add_parser("check-serving", help="fail, naming them, if a SavedModel needs ops that TF "
                                                       "Serving does not register")
    check.add_argument("model_dir", help="a SavedModel directory (e.g. serving/<version>)")
    check.set_defaults(handler=_check_serving)
    serve = commands.add_parser("serve", help="serve a versioned model directory with TF Serving's REST API")
    serve.add_argument("--model-dir", required=True, help="directory of numeric versions (e.g. mtrec_runs/serving)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    serve.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE)
    serve.set_defaults(handler=_serve)
    recommend = commands.add_parser("recommend", help="top-k items for a user from a TF Serving REST endpoint")
    recommend.add_argument("--user", required=True)
    recommend.add_argument("--k", type=int, default=10)
    recommend.add_argument("--history", help="comma-separated item ids the user interacted with, newest first")
    recommend.add_argument("--include-history", action="store_true", help="do not exclude the history's items")
    recommend.add_argument("--url", default="http://localhost:8501")
    recommend.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    recommend.set_defaults(handler=_recommend)
    benchmark = commands.add_parser("benchmark", help="run a benchmark; results go to JSON and markdown")
    benchmark.add_argument("name", choices=["serving", "movielens", "kuairand", "continuous", "scale", "reliability",
                                            "retrieval-gate", "distillation"])
    benchmark.add_argument("--data", help="movielens: directory of the GroupLens ML-100K files, or of events.csv "
                                          "and items.csv in the CSV contract; kuairand, continuous: of the "
                                          "KuaiRand-Pure files; distillation: either (found by its files)")
    benchmark.add_argument("--output", default="benchmarks/results")
    benchmark.add_argument("--requests", type=int, default=200, help="timed requests per measurement")
    benchmark.add_argument("--sizes", type=_sizes, help="scale: events per size, e.g. 100000,1000000,5000000 "
                                                        "(the default)")
    benchmark.add_argument("--config", help="scale: the YAML run configuration to measure (default: the defaults "
                                            "with a small random BERT text tower); its data section is ignored")
    benchmark.add_argument("--work-dir", help="scale, retrieval-gate: where the data and pipeline outputs go, "
                                              "removed at the end (default: the system's temporary directory)")
    benchmark.add_argument("--quick", action="store_true",
                           help="reliability: leave out the fault that kills and reruns a whole pipeline")
    benchmark.add_argument("--user-behaviour", action="store_true",
                           help="kuairand: only the transformer user tower against the mean tower (the chosen "
                                "model, trained both ways), written as kuairand-user-behaviour")
    benchmark.set_defaults(handler=_benchmark)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (InputError, config_lib.ConfigError) as error:
        print(f"mtrec: error: {error}", file=sys.stderr)
        return 2


def console() -> int:
    """The `mtrec` command: `main`, with TensorFlow's native start-up lines hidden unless --verbose."""
    if "--verbose" not in sys.argv[1:]:
        native_logs.hide()
    return main()


if __name__ == "__main__":
    sys.exit(console())
