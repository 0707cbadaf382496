"""The `mtrec` command: run the pipeline, generate or convert data."""

from __future__ import annotations

import argparse
import os
import sys

from components.example_gen.input_contract import InputError
from pipeline import config as config_lib


def _run(args: argparse.Namespace) -> int:
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines
    from pipeline import local_runner, run_summary

    config = config_lib.load(args.config)
    if args.output_dir:
        config.output_dir = args.output_dir
    try:
        summary = local_runner.run(config, verbose=args.verbose)
    except local_runner.RunFailedError as error:
        print(f"mtrec: run failed: {error}", file=sys.stderr)
        return 1
    print(run_summary.format_summary(summary))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from pipeline.data import synthetic

    events, items = synthetic.generate(args.output)
    print(f"mtrec: wrote {events} and {items}")
    return 0


def _convert_movielens(args: argparse.Namespace) -> int:
    from pipeline.data import movielens

    events, items = movielens.convert(args.data, args.output)
    print(f"mtrec: wrote {events} and {items}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mtrec", description="Multi-task recommender on TFX.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline (default: built-in synthetic data)")
    run.add_argument("--config", help="YAML configuration (see README); defaults apply to what it leaves out")
    run.add_argument("--output-dir", help="overrides the configuration's output_dir")
    run.add_argument("--verbose", action="store_true", help="show all of TFX's and Beam's logs")
    run.set_defaults(handler=_run)
    generate = commands.add_parser("generate", help="write the synthetic dataset (events.csv, items.csv)")
    generate.add_argument("--output", required=True)
    generate.set_defaults(handler=_generate)
    convert = commands.add_parser("convert-movielens", help="convert MovieLens 100K into the CSV contract")
    convert.add_argument("--data", required=True, help="directory with u.data, u.item, u.genre")
    convert.add_argument("--output", required=True)
    convert.set_defaults(handler=_convert_movielens)
    check = commands.add_parser("check-serving", help="fail, naming them, if a SavedModel needs ops that TF "
                                                       "Serving does not register")
    check.add_argument("model_dir", help="a SavedModel directory (e.g. serving/<version>)")
    check.set_defaults(handler=_check_serving)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (InputError, config_lib.ConfigError) as error:
        print(f"mtrec: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
