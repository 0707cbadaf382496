"""`mtrec serve`: a development server with TF Serving's REST API over a versioned model directory.

Like TF Serving's default version policy it serves the newest version under `--model-dir` (numeric
subdirectories, as Pusher writes them) and watches for newer ones. A new version is loaded beside the old
one and swapped in only once it loaded, so no request fails during a swap; a version that does not load, or
whose manifest (written by mtrec's Pusher) shows it damaged since it was published, is logged and skipped until
it changes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the WordPiece ops of the Transform graph)

from serving import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MODEL_NAME, rest, versions

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>/metadata|:predict)?$")
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    version: int
    signatures: dict[str, Any]
    model: Any  # keeps the loaded object, and so its variables, alive


class ModelRepository:
    """The currently served version of one model, swapped atomically when a newer one loads."""

    def __init__(self, model_dir: str, poll_seconds: float = 1.0):
        self.model_dir = model_dir
        self.poll_seconds = poll_seconds
        self._current: LoadedModel | None = None
        self._failed: dict[int, float] = {}  # version -> mtime of the attempt that failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def refresh(self) -> None:
        """Loads the newest version if it is newer than the served one."""
        available = versions.versions(self.model_dir)
        if not available or (self._current and available[-1] <= self._current.version):
            return
        version = available[-1]
        path = os.path.join(self.model_dir, str(version))
        mtime = os.path.getmtime(path)
        if self._failed.get(version) == mtime:
            return
        try:
            damage = versions.damage(path) if os.path.isfile(os.path.join(path, versions.MANIFEST_FILE)) else []
            if damage:
                raise ValueError(f"damaged since it was published: {'; '.join(damage[:3])}")
            model = tf.saved_model.load(path)
        except Exception as error:  # noqa: BLE001 - a broken version must not stop the served one
            log.error("mtrec serve: version %d did not load, still serving %s: %s", version,
                      self._current.version if self._current else "nothing", error)
            self._failed[version] = mtime
            return
        self._current = LoadedModel(version, dict(model.signatures), model)
        log.warning("mtrec serve: now serving version %d", version)

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()


def make_handler(repository: ModelRepository, model_name: str, max_batch_size: int,
                 max_body_bytes: int = 64 * 2**20) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving's clients expect
        # Headers and body leave in two writes; with Nagle's algorithm on, a kept-alive client's delayed ACK
        # would hold the body back for ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug(format, *args)

        def _reply(self, status: int, body: dict[str, Any], close: bool = False) -> None:
            """`close`: end the connection after the reply (sets close_connection), e.g. when a body went unread."""
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _resolve(self, close: bool = False) -> tuple[LoadedModel | None, str | None]:
            """The served model and the rest of the path, or (None, None) once an error is answered."""
            match = _PATH.match(self.path)
            if not match or match["name"] != model_name:
                self._reply(404, {"error": f"Servable not found for request: {self.path}"}, close)
                return None, None
            loaded = repository.current
            if loaded is None:
                self._reply(503, {"error": f"no loadable version of '{model_name}' yet"}, close)
                return None, None
            if match["version"] and int(match["version"]) != loaded.version:
                self._reply(404, {"error": f"Servable not found for request: Specific({model_name}, "
                                           f"{match['version']}); serving version {loaded.version}"}, close)
                return None, None
            return loaded, match["rest"]

        def do_GET(self) -> None:
            loaded, rest_of_path = self._resolve()
            if loaded is None:
                return
            if rest_of_path == "/metadata":
                self._reply(200, {"model_spec": {"name": model_name, "signature_name": "",
                                                 "version": str(loaded.version)},
                                  "metadata": {"signature_def": {"signature_def": rest.signature_metadata(
                                      loaded.signatures)}}})
            elif rest_of_path is None:
                self._reply(200, {"model_version_status": [{"version": str(loaded.version), "state": "AVAILABLE",
                                                            "status": {"error_code": "OK", "error_message": ""}}]})
            else:
                self._reply(405, {"error": "use POST for :predict"})

        def do_POST(self) -> None:
            # An answer before the body is read closes the connection: the body must not be taken for the next
            # request on it.
            loaded, rest_of_path = self._resolve(close=True)
            if loaded is None:
                return
            if rest_of_path != ":predict":
                self._reply(405, {"error": "only :predict accepts POST"}, close=True)
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:  # a negative length would read until the client closes the connection
                self._reply(400, {"error": f"Content-Length {self.headers.get('Content-Length')!r} is not a "
                                           f"non-negative integer"}, close=True)
                return
            if length > max_body_bytes:
                self._reply(413, {"error": f"request body of {length} bytes exceeds {max_body_bytes}"}, close=True)
                return
            body = self.rfile.read(length)
            try:
                self._reply(200, rest.predict(loaded.signatures, body, max_batch_size))
            except rest.RequestError as error:
                self._reply(400, {"error": str(error)})
            except Exception as error:  # noqa: BLE001 - a fault of the server or model, not of the request
                log.exception("mtrec serve: predict failed")
                self._reply(500, {"error": f"internal error: {type(error).__name__}: {error}"})

    return Handler


class ModelServer:
    """The HTTP server and its model repository; `port=0` picks a free port (see `.port`)."""

    def __init__(self, model_dir: str, host: str = "127.0.0.1", port: int = 8501,
                 model_name: str = DEFAULT_MODEL_NAME, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 poll_seconds: float = 1.0):
        self.repository = ModelRepository(model_dir, poll_seconds)
        self.httpd = ThreadingHTTPServer((host, port), make_handler(self.repository, model_name, max_batch_size))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> ModelServer:
        self.repository.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.repository.stop()
