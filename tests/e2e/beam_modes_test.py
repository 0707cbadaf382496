"""ExampleGen and Transform write the same output in the DirectRunner's multi-processing mode as in memory.

Worker processes unpickle every function of a Beam job and hold their own module state, so code that does not
pickle or that keeps worker-local state would fail or differ there. Both runs take the pipeline's own
components (statistics and the data gate included) up to Transform, on the same small generated data.
"""

from __future__ import annotations

import collections
import glob
import os

import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx.orchestration.pipeline import RunOptions

from models import features
from pipeline import config as config_lib
from pipeline import local_runner

MODES = {"in_memory": {"direct_running_mode": "in_memory", "direct_num_workers": 1},
         "multi_processing": {"direct_running_mode": "multi_processing", "direct_num_workers": 2}}


def _run_to_transform(output_dir: str, beam: dict) -> str:
    config = config_lib.from_dict({
        "output_dir": output_dir, "beam": beam,
        "data": {"synthetic": {"num_users": 60, "num_items": 40, "events_per_user": 12}},
        "text_encoder": {"max_length": 16}})
    paths = local_runner.RunPaths(output_dir)
    data_root = local_runner.prepare_data(config, paths)
    pipeline = local_runner.local_pipeline(config, paths, data_root)
    assert pipeline.beam_pipeline_args[:3] == ["--runner=DirectRunner", f"--direct_running_mode="
                                               f"{beam['direct_running_mode']}",
                                               f"--direct_num_workers={beam['direct_num_workers']}"]
    tfx.orchestration.LocalDagRunner().run(pipeline, run_options=RunOptions(to_nodes=["Transform"]))
    return paths.pipeline_root


def _records_per_split(artifact_root: str) -> dict[str, collections.Counter]:
    """Split name -> multiset of its records, each parsed and serialized deterministically (shard files differ
    between modes; the records must not). Floats are compared to 5 decimals: a z-scored feature's mean and
    variance are float sums whose order follows the bundles (1e-7 apart between the modes)."""
    splits: dict[str, collections.Counter] = {}
    for path in glob.glob(os.path.join(artifact_root, "*", "Split-*", "*.gz")):
        split = os.path.basename(os.path.dirname(path))
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator():
            example = tf.train.Example.FromString(record)
            for feature in example.features.feature.values():
                if feature.HasField("float_list"):
                    rounded = [round(value, 5) for value in feature.float_list.value]
                    del feature.float_list.value[:]
                    feature.float_list.value.extend(rounded)
            splits.setdefault(split, collections.Counter())[example.SerializeToString(deterministic=True)] += 1
    return splits


def _vocabularies(pipeline_root: str) -> dict[str, bytes]:
    paths = glob.glob(os.path.join(pipeline_root, "Transform", "transform_graph", "*", "transform_fn", "assets", "*"))
    vocabularies = {}
    for path in paths:
        with open(path, "rb") as handle:
            vocabularies[os.path.basename(path)] = handle.read()
    return vocabularies


@pytest.fixture(scope="module")
def pipeline_roots(tmp_path_factory):
    return {mode: _run_to_transform(str(tmp_path_factory.mktemp(mode)), beam) for mode, beam in MODES.items()}


def test_example_gen_writes_the_same_examples_in_both_modes(pipeline_roots):
    in_memory, multi = (_records_per_split(os.path.join(pipeline_roots[mode], "EventsExampleGen", "examples"))
                        for mode in MODES)
    assert sorted(in_memory) == ["Split-eval", "Split-train"]
    assert sum(in_memory["Split-train"].values()) > 400
    assert multi == in_memory
    for mode in MODES:  # the bucket files that grouped and shuffled the events are gone
        artifact, = glob.glob(os.path.join(pipeline_roots[mode], "EventsExampleGen", "examples", "*"))
        assert sorted(os.listdir(artifact)) == ["Split-eval", "Split-train", "quarantine"]


def test_transform_writes_the_same_vocabularies_and_transformed_examples_in_both_modes(pipeline_roots):
    in_memory, multi = (_vocabularies(pipeline_roots[mode]) for mode in MODES)
    assert {features.USER_VOCABULARY, features.ITEM_VOCABULARY, features.CATEGORY_VOCABULARY} <= set(in_memory)
    assert multi == in_memory
    in_memory, multi = (_records_per_split(os.path.join(pipeline_roots[mode], "Transform", "transformed_examples"))
                        for mode in MODES)
    assert sorted(in_memory) == ["Split-eval", "Split-train"]
    assert multi == in_memory
