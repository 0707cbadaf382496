"""`mtrec benchmark reliability`: every bad input and fault mtrec promises to survive, tried, with the figures.

Bad input: file faults must reject the run with a message naming the file (and line); row faults must be
quarantined with their exact reason, every row read ending up as an example or a quarantined row (rows lost:
0); config faults must be listed all at once; malformed serving requests must be RequestErrors (a 400).
Faults: a push that fails half-way, a push that died leaving its staging directory, a version damaged after it
was published (for the Pusher and for the server), pushes while a server watches, and a run killed during
Trainer and started again. The tables here are also the test suite's (tests/components, tests/pipeline).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

from benchmarks import reports

ITEMS = "item_id,title,description,categories\na,Rocket,To orbit,space\nb,Bread,Oven,cooking\n"
EVENTS = "user_id,item_id,timestamp,clicked,rating\nu1,a,100,1,5\nu1,b,200,0,2\nu2,b,300,1,4\n"
NOW = 10_000  # the row cases' clock: events after this timestamp are in the future


@dataclasses.dataclass(frozen=True)
class FileCase:
    """A file fault: the run is rejected with an InputError matching `message` (a regular expression)."""

    name: str
    events: str | None
    items: str | None
    message: str
    encoding: str = "utf-8"


@dataclasses.dataclass(frozen=True)
class RowCase:
    """A row fault: exactly the rows `quarantined` (file, line, column, reason) are quarantined."""

    name: str
    events: str
    items: str
    quarantined: tuple[tuple[str, int, str | None, str], ...]


FILE_CASES = (
    FileCase("events file missing", None, ITEMS, r"events\.csv: input file not found"),
    FileCase("items file missing", EVENTS, None, r"items\.csv: input file not found"),
    FileCase("empty file", "", ITEMS, r"events\.csv: the file is empty"),
    FileCase("header only", "user_id,item_id,timestamp,clicked,rating\n", ITEMS, r"events\.csv: no rows"),
    FileCase("missing required column", "user_id,item_id,timestamp,clicked\nu1,a,1,1\n", ITEMS,
             r"events\.csv: missing required column\(s\) \['rating'\]"),
    FileCase("items without title column", EVENTS, "item_id,description\na,x\n",
             r"items\.csv: missing required column\(s\) \['title'\]"),
    FileCase("semicolon delimiter", EVENTS.replace(",", ";"), ITEMS,
             r"events\.csv: missing required column.*the header looks ';'-separated"),
    FileCase("tab delimiter", EVENTS.replace(",", "\t"), ITEMS,
             r"events\.csv: missing required column.*the header looks tab-separated"),
    FileCase("duplicate header column", "user_id,item_id,timestamp,clicked,rating,rating\nu1,a,1,1,1,1\n", ITEMS,
             r"events\.csv, line 1: duplicate column\(s\) \['rating'\] in the header"),
    FileCase("broken quoting", EVENTS + 'u2,"a,300,1,4\n', ITEMS, r"events\.csv, line 5: unparsable CSV"),
    FileCase("Latin-1 encoding", EVENTS, "item_id,title\na,Caf\xe9\n",
             r"items\.csv: not valid UTF-8 at line 2, character 6", encoding="latin-1"),
)

ROW_CASES = (
    RowCase("unparsable timestamp", EVENTS + "u3,a,soon,1,4\n", ITEMS,
            (("events.csv", 5, "timestamp", "'soon' is not int"),)),
    RowCase("NaN rating", EVENTS + "u3,a,400,1,nan\n", ITEMS,
            (("events.csv", 5, "rating", "'nan' is not a finite number"),)),
    RowCase("infinite rating", EVENTS + "u3,a,400,1,-inf\n", ITEMS,
            (("events.csv", 5, "rating", "'-inf' is not a finite number"),)),
    RowCase("rating beyond float32", EVENTS + "u3,a,400,1,1e39\n", ITEMS,
            (("events.csv", 5, "rating", "'1e39' is not a finite number (float32)"),)),
    RowCase("click not 0 or 1", EVENTS + "u3,a,400,2,4\n", ITEMS, (("events.csv", 5, "clicked", "2 is not 0 or 1"),)),
    RowCase("negative timestamp", EVENTS + "u3,a,-5,1,4\n", ITEMS, (("events.csv", 5, "timestamp", "-5 is negative"),)),
    RowCase("future timestamp", EVENTS + "u3,a,20000,1,4\n", ITEMS,
            (("events.csv", 5, "timestamp", "20000 is in the future (after 10000)"),)),
    RowCase("empty user id", EVENTS + ",a,400,1,4\n", ITEMS, (("events.csv", 5, "user_id", "empty value"),)),
    RowCase("short row", EVENTS + "u3,a,400\n", ITEMS, (("events.csv", 5, "clicked", "empty value"),)),
    RowCase("extra fields", EVENTS + "u3,a,400,1,4,extra\n", ITEMS,
            (("events.csv", 5, None, "6 fields, but the header has 5"),)),
    RowCase("duplicate event", EVENTS + "u1,b,200,0,2\n", ITEMS,
            (("events.csv", 5, None, "duplicate of line 3 (same user, item and timestamp)"),)),
    RowCase("unknown item", EVENTS + "u3,z,400,1,4\n", ITEMS,
            (("events.csv", 5, "item_id", "item 'z' is not in the item catalogue"),)),
    RowCase("item with empty text", EVENTS + "u3,c,400,1,4\n", ITEMS + "c,,no title,x\n",
            (("events.csv", 5, "item_id", "item 'c' is quarantined (items.csv, line 4, column 'title': empty value)"),
             ("items.csv", 4, "title", "empty value"))),
    RowCase("duplicate item id", EVENTS, ITEMS + "a,Again,,\n",
            (("items.csv", 4, "item_id", "item 'a' already defined on line 2"),)),
    RowCase("empty item id", EVENTS, ITEMS + ",Nameless,,\n", (("items.csv", 4, "item_id", "empty value"),)),
)

# Configs with several problems; every listed problem must be in the one ConfigError.
CONFIG_CASES = (
    ("unknown keys", {"modle": {}, "training": {"epoch": 3}}, ["modle: unknown key", "training.epoch: unknown key"]),
    ("wrong types", {"training": {"epochs": "three", "batch_size": 2.5}},
     ["training.epochs: expected int", "training.batch_size: expected int"]),
    ("impossible values", {"model": {"embedding_dim": -4}, "validation": {"max_bad_fraction": 2}},
     ["model.embedding_dim: must be positive", "validation.max_bad_fraction: must be between 0 and 1"]),
    ("task without its label", {"model": {"tasks": [{"name": "click", "type": "binary"}]}},
     ["model.tasks[0].label: a binary task needs a label column of events.csv"]),
    ("task conditioned on an unknown task",
     {"model": {"tasks": [{"name": "like", "type": "binary", "label": "liked", "given": "click"}]}},
     ["model.tasks[0].given: 'click' is not another task"]),
)

# Malformed `:predict` bodies for the `rank` signature; each must be a RequestError.
REQUEST_CASES = (
    ("malformed JSON", b'{"inputs": '),
    ("not an object", b"[1, 2]"),
    ("no inputs", b'{"signature_name": "rank"}'),
    ("unknown signature", b'{"signature_name": "nope", "inputs": {}}'),
    ("missing field", b'{"signature_name": "rank", "inputs": {"user_id": ["u"]}}'),
    ("wrong dtype", b'{"signature_name": "rank", "inputs": {"user_id": [1], "history": [[""]], "item_ids": [["a"]]}}'),
    ("empty batch", b'{"signature_name": "rank", "inputs": {"user_id": [], "history": [], "item_ids": []}}'),
    ("oversized batch", json.dumps({"signature_name": "rank", "inputs": {
        "user_id": ["u"] * 10_000, "history": [[""]] * 10_000, "item_ids": [["a"]] * 10_000}}).encode()),
)


def write_case(directory: str, events: str | None, items: str | None, encoding: str = "utf-8") -> str:
    """Writes the case's files in `encoding`; a None file is left out."""
    os.makedirs(directory, exist_ok=True)
    for name, text in (("events.csv", events), ("items.csv", items)):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            os.remove(path)
        if text is not None:
            with open(path, "wb") as handle:
                handle.write(text.encode(encoding))
    return directory


def try_file_case(case: FileCase, directory: str) -> dict[str, Any]:
    from components.example_gen import input_contract

    write_case(directory, case.events, case.items, case.encoding)
    try:
        input_contract.check_input_dir(directory)
    except input_contract.InputError as error:
        return {"case": case.name, "handled": bool(re.search(case.message, str(error))), "message": str(error)}
    return {"case": case.name, "handled": False, "message": "accepted"}


def quarantine(directory: str, now: int = NOW) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """(quarantined rows, row counts, examples written) of ExampleGen's Beam transform over `directory`."""
    import apache_beam as beam

    from components.example_gen import executor

    out, counted = os.path.join(directory, "quarantine"), os.path.join(directory, "examples")
    with beam.Pipeline() as pipeline:
        splits = pipeline | executor.EventsToSplitExamples(directory, 3, "time", 0.5, 0, out,
                                                           os.path.join(directory, "buckets"), now)
        _ = ((splits["train"], splits["eval"]) | beam.Flatten() | beam.combiners.Count.Globally()
             | beam.io.WriteToText(counted, num_shards=1, shard_name_template=""))
    with open(os.path.join(out, executor.QUARANTINE_FILE), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    with open(os.path.join(out, executor.ROW_COUNTS_FILE), encoding="utf-8") as handle:
        counts = json.load(handle)
    with open(counted, encoding="utf-8") as handle:
        return rows, counts, int(handle.read())


def try_row_case(case: RowCase, directory: str) -> dict[str, Any]:
    rows, counts, examples = quarantine(write_case(directory, case.events, case.items))
    found = tuple((row["file"], row["line"], row["column"], row["reason"]) for row in rows)
    read = counts["events.csv"]["rows"]
    lost = read - examples - counts["events.csv"]["quarantined"]
    return {"case": case.name, "handled": found == case.quarantined and lost == 0, "quarantined": len(found),
            "event_rows": read, "examples": examples, "rows_lost": lost}


def try_config_case(name: str, values: dict[str, Any], expected: list[str]) -> dict[str, Any]:
    from pipeline import config

    try:
        config.from_dict(values)
    except config.ConfigError as error:
        return {"case": name, "handled": all(part in str(error) for part in expected), "message": str(error)}
    return {"case": name, "handled": False, "message": "accepted"}


def try_request_cases(signatures: dict[str, Any]) -> list[dict[str, Any]]:
    from serving import rest

    results = []
    for name, body in REQUEST_CASES:
        try:
            rest.parse_request(signatures, body, 64)
            results.append({"case": name, "handled": False, "message": "accepted"})
        except rest.RequestError as error:
            results.append({"case": name, "handled": True, "message": str(error)})
        except Exception as error:  # noqa: BLE001 - anything else would be a 500: a failure of the case
            results.append({"case": name, "handled": False, "message": f"{type(error).__name__}: {error}"})
    return results


# === Faults ===

def _model_dir(directory: str, files: int = 50, size: int = 20_000) -> str:
    os.makedirs(os.path.join(directory, "variables"), exist_ok=True)
    with open(os.path.join(directory, "saved_model.pb"), "wb") as handle:
        handle.write(b"graph")
    for index in range(files):
        with open(os.path.join(directory, "variables", f"part-{index}"), "wb") as handle:
            handle.write(bytes([index % 256]) * size)
    return directory


def fault_failed_push(work: str) -> dict[str, Any]:
    """The copy of a push fails half-way: the previous version stays the newest, nothing partial is visible."""
    from serving import versions

    source, serving = _model_dir(os.path.join(work, "model")), os.path.join(work, "serving")
    first = versions.publish(source, serving)

    def copy_then_fail(src: str, dst: str) -> None:
        os.makedirs(dst)
        shutil.copy(os.path.join(src, "saved_model.pb"), dst)
        raise OSError("injected: disk full")

    with mock.patch.object(versions.io_utils, "copy_dir", copy_then_fail):
        try:
            versions.publish(source, serving)
        except OSError:
            pass
    survived = os.listdir(serving) == [first] and versions.damage(os.path.join(serving, first)) == []
    return {"fault": "push fails half-way", "survived": survived}


def fault_dead_push(work: str) -> dict[str, Any]:
    """A push died leaving its staging directory: servers never see it, the next push removes it."""
    from serving import versions

    source, serving = _model_dir(os.path.join(work, "model")), os.path.join(work, "serving")
    staging = os.path.join(serving, f"{versions.STAGING_PREFIX}dead")
    shutil.copytree(source, staging)
    invisible = versions.versions(serving) == []
    version = versions.publish(source, serving)
    return {"fault": "push killed, staging left behind", "survived": invisible and os.listdir(serving) == [version]}


def fault_damaged_version_pusher(work: str) -> dict[str, Any]:
    """A pushed version is damaged; the next push of the same model publishes an intact version again."""
    from components.pusher import executor as pusher_executor
    from serving import versions

    source, serving = _model_dir(os.path.join(work, "model")), os.path.join(work, "serving")
    first = versions.publish(source, serving, {pusher_executor.SOURCE_FILE: source})
    with open(os.path.join(serving, first, "variables", "part-3"), "ab") as handle:
        handle.write(b"!")
    again = pusher_executor._already_published(serving, source)  # noqa: SLF001 - the Pusher's own decision
    republished = versions.publish(source, serving) if again is None else again
    survived = again is None and versions.damage(os.path.join(serving, republished)) == []
    return {"fault": "pushed version damaged (Pusher)", "survived": survived}


def _tiny_saved_model(directory: str) -> str:
    import tensorflow as tf

    module = tf.Module()
    module.weight = tf.Variable([[2.0]])
    module.predict = tf.function(lambda x: {"y": tf.matmul(x, module.weight)},
                                 input_signature=[tf.TensorSpec([None, 1], tf.float32)])
    tf.saved_model.save(module, directory, signatures={"serving_default": module.predict})
    return directory


def fault_damaged_version_server(work: str) -> dict[str, Any]:
    """A version is damaged after publishing (a flipped byte still loads in TensorFlow): the server keeps the
    version it serves."""
    from serving import versions
    from serving.server import ModelRepository

    serving = os.path.join(work, "serving")
    source = _tiny_saved_model(os.path.join(work, "model"))
    first = versions.publish(source, serving)
    repository = ModelRepository(serving)
    repository.refresh()
    second = versions.publish(source, serving)
    variables = os.path.join(serving, second, "variables", "variables.data-00000-of-00001")
    with open(variables, "r+b") as handle:
        data = bytearray(handle.read())
        data[-1] ^= 0xFF
        handle.seek(0)
        handle.write(bytes(data))
    repository.refresh()
    return {"fault": "pushed version damaged (server)", "survived": repository.current.version == int(first)}


def fault_push_while_serving(work: str, pushes: int = 10) -> dict[str, Any]:
    """A reader lists the serving directory as a server does while pushes run; it never meets a partial version."""
    from serving import versions

    source, serving = _model_dir(os.path.join(work, "model"), files=200), os.path.join(work, "serving")
    os.makedirs(serving)
    expected = sorted(os.listdir(os.path.join(source, "variables")))
    partial, seen, done = [], set(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            for version in versions.versions(serving):
                seen.add(version)
                if sorted(os.listdir(os.path.join(serving, str(version), "variables"))) != expected:
                    partial.append(version)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(pushes):
            versions.publish(source, serving)
    finally:
        done.set()
        watcher.join()
    return {"fault": f"{pushes} pushes while a server watches", "survived": not partial and len(seen) > 1,
            "versions_seen": len(seen), "partial_versions_seen": len(partial)}


def fault_killed_trainer(work: str) -> dict[str, Any]:
    """`mtrec run` is killed (SIGKILL) during Trainer; run again, it reuses the cached artifacts before Trainer
    and pushes a model of a finished Trainer."""
    import yaml

    from pipeline import config as run_config

    os.makedirs(work, exist_ok=True)
    output_dir = os.path.join(work, "run")
    settings = {"output_dir": output_dir,
                "data": {"synthetic": {"num_users": 150, "num_items": 60, "events_per_user": 20}},
                "text_encoder": {"max_length": 24, "backbone": {"num_layers": 1, "num_heads": 2, "hidden_dim": 16,
                                                                "intermediate_dim": 32}},
                "training": {"epochs": 30, "batch_size": 128},
                # The CSV contract's tasks: the synthetic data's sparse purchase task, overfitted by the 30 epochs
                # that keep Trainer running long enough to be killed, misses min_auc on this little data (0.54),
                # and the fault is about recovery, not the gate.
                "model": {"tasks": [dataclasses.asdict(task) for task in run_config.default_tasks("csv")]}}
    path = os.path.join(work, "config.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(settings, handle)
    mtrec = os.path.join(os.path.dirname(sys.executable), "mtrec")
    models = os.path.join(output_dir, "pipeline_root", "Trainer", "model")
    run = subprocess.Popen([mtrec, "run", "--config", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.time() + 900
    while not (os.path.isdir(models) and os.listdir(models)) and run.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    killed = run.poll() is None
    time.sleep(5)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    killed_models = set(os.listdir(models)) if os.path.isdir(models) else set()
    started = time.time()
    rerun = subprocess.run([mtrec, "run", "--quiet", "--config", path], capture_output=True, text=True)
    summary = json.loads(rerun.stdout.strip().splitlines()[-1]) if rerun.returncode == 0 else {}
    survived = (killed and rerun.returncode == 0 and summary.get("pushed") is True
                and os.path.basename(summary.get("model", "")) not in killed_models)
    return {"fault": "run killed during Trainer, then rerun", "survived": survived,
            "rerun_seconds": round(time.time() - started, 1)}


FAULTS: tuple[Callable[[str], dict[str, Any]], ...] = (
    fault_failed_push, fault_dead_push, fault_damaged_version_pusher, fault_damaged_version_server,
    fault_push_while_serving)


def run(signatures: dict[str, Any] | None = None, with_kill: bool = True,
        log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Tries every case and fault; `signatures` (of an exported mtrec model) enable the request cases."""
    with tempfile.TemporaryDirectory(prefix="mtrec-reliability-") as work:
        bad_input = [try_file_case(case, os.path.join(work, "file", str(i))) for i, case in enumerate(FILE_CASES)]
        log(f"file faults: {sum(r['handled'] for r in bad_input)}/{len(bad_input)} handled")
        rows = [try_row_case(case, os.path.join(work, "row", str(i))) for i, case in enumerate(ROW_CASES)]
        log(f"row faults: {sum(r['handled'] for r in rows)}/{len(rows)} handled")
        bad_input += rows
        bad_input += [try_config_case(*case) for case in CONFIG_CASES]
        if signatures is not None:
            bad_input += try_request_cases(signatures)
        faults = [fault(os.path.join(work, "fault", str(i))) for i, fault in enumerate(FAULTS)]
        if with_kill:
            log("killing a run during Trainer and running it again (a few minutes)")
            faults.append(fault_killed_trainer(os.path.join(work, "fault", "kill")))
    report = {
        "machine": reports.machine(),
        "bad_input_cases_tried": len(bad_input),
        "bad_input_cases_handled": sum(case["handled"] for case in bad_input),
        "faults_injected": len(faults),
        "faults_survived": sum(fault["survived"] for fault in faults),
        "rows_lost": sum(case.get("rows_lost", 0) for case in bad_input),
        "rows_read": sum(case.get("event_rows", 0) for case in bad_input),
        "bad_input": bad_input,
        "faults": faults,
    }
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Reliability", "", f"Measured on {report['machine']}.", "",
             f"- Bad-input cases: {report['bad_input_cases_handled']} of {report['bad_input_cases_tried']} handled",
             f"- Faults: {report['faults_survived']} of {report['faults_injected']} survived",
             f"- Rows lost: {report['rows_lost']} (of {report['rows_read']} event rows read in the row cases)", "",
             "| bad input | handled | detail |", "|---|---|---|"]
    for case in report["bad_input"]:
        detail = case.get("message", f"{case.get('quarantined')} quarantined, {case.get('examples')} examples")
        lines.append(f"| {case['case']} | {'yes' if case['handled'] else 'NO'} | "
                     f"{detail.splitlines()[0][:100].replace('|', '/')} |")
    lines += ["", "| fault | survived |", "|---|---|"]
    lines += [f"| {fault['fault']} | {'yes' if fault['survived'] else 'NO'} |" for fault in report["faults"]]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], output_dir: str) -> list[str]:
    return reports.write(report, output_dir, "reliability", markdown(report))
