"""The versioned model directory that Pusher writes and model servers watch.

A version is a numeric subdirectory holding a SavedModel. Pusher publishes one atomically: it copies the model
into a hidden staging directory beside the versions (a name TF Serving ignores), writes a manifest of every
file's size and SHA-256 there, and renames the directory to its number. A server therefore sees a version
whole or not at all, and a copy that failed half-way leaves only a staging directory, removed by the next
push. The manifest lets a reader tell an intact version from one damaged after it was published.

Paths go through TFX's fileio, so the directory may be local or remote. The rename is atomic on a local or
network file system (POSIX rename); object stores (gs://, s3://) have no atomic directory rename, so there the
publish is a copy, as with TFX's own Pusher.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

from tfx.dsl.io import fileio
from tfx.utils import io_utils

MANIFEST_FILE = "mtrec_manifest.json"  # in each version: {relative path: [size, sha256]} of every other file
STAGING_PREFIX = ".partial-"


def versions(model_dir: str) -> list[int]:
    """Numeric version subdirectories that hold a saved_model.pb, oldest first."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir)
                  if name.isdigit() and os.path.isfile(os.path.join(model_dir, name, "saved_model.pb")))


def _digest(path: str) -> str:
    digest = hashlib.sha256()
    with fileio.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(folder, name), directory)
                  for folder, _, names in fileio.walk(directory) for name in names if name != MANIFEST_FILE)


def manifest(directory: str) -> dict[str, list]:
    return {name: [fileio.stat(os.path.join(directory, name)).length, _digest(os.path.join(directory, name))]
            for name in _files(directory)}


def damage(version_dir: str) -> list[str]:
    """What is wrong with a published version: files missing, added or changed against its manifest, or no
    manifest at all. Empty for an intact version."""
    path = os.path.join(version_dir, MANIFEST_FILE)
    if not fileio.exists(path):
        return [f"{version_dir}: no {MANIFEST_FILE}"]
    expected = json.loads(io_utils.read_string_file(path))
    found = manifest(version_dir)
    problems = [f"{name}: missing" for name in sorted(set(expected) - set(found))]
    problems += [f"{name}: not in the manifest" for name in sorted(set(found) - set(expected))]
    problems += [f"{name}: changed (size or SHA-256 differs)" for name in sorted(set(expected) & set(found))
                 if expected[name] != found[name]]
    return problems


def publish(source_dir: str, model_dir: str, extra_files: dict[str, str] | None = None) -> str:
    """Copies `source_dir` (plus `extra_files`, name -> text) to a new version of `model_dir`, atomically; returns
    the version. The version is the current Unix time, or one more than the newest version if that is later."""
    fileio.makedirs(model_dir)
    for name in fileio.listdir(model_dir):  # staging left by a push that died
        if name.rstrip("/").startswith(STAGING_PREFIX):
            fileio.rmtree(os.path.join(model_dir, name))
    staging = os.path.join(model_dir, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
    try:
        io_utils.copy_dir(source_dir, staging)
        for name, text in (extra_files or {}).items():
            io_utils.write_string_file(os.path.join(staging, name), text)
        io_utils.write_string_file(os.path.join(staging, MANIFEST_FILE),
                                   json.dumps(manifest(staging), indent=1, sort_keys=True))
        existing = [int(name.rstrip("/")) for name in fileio.listdir(model_dir) if name.rstrip("/").isdigit()]
        version = max(int(time.time()), max(existing, default=0) + 1)
        while fileio.exists(os.path.join(model_dir, str(version))):
            version += 1
        fileio.rename(staging, os.path.join(model_dir, str(version)))
        return str(version)
    finally:
        if fileio.exists(staging):
            fileio.rmtree(staging)
