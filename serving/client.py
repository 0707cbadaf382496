"""`mtrec recommend`: top-k items for a user from the `retrieve` signature of a TF Serving REST endpoint.

It speaks only TF Serving's REST API, so the same arguments work against `mtrec serve` and a real TF Serving.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from models import features
from serving import DEFAULT_MODEL_NAME


class ServingError(RuntimeError):
    """The server answered with an error, or could not be reached."""


def predict(url: str, model_name: str, body: dict, timeout: float = 30.0) -> dict:
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/models/{model_name}:predict",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        raise ServingError(f"{url}: HTTP {error.code}: {detail}") from None
    except urllib.error.URLError as error:
        raise ServingError(f"{url}: cannot reach the server ({error.reason})") from None


def recommend(url: str, user_id: str, k: int = 10, history: list[str] | None = None,
              exclude_history: bool = True, model_name: str = DEFAULT_MODEL_NAME) -> list[tuple[str, float]]:
    """(item id, score) pairs, best first."""
    body = {"signature_name": features.RETRIEVE_SIGNATURE, "inputs": {
        features.USER_ID: [user_id],
        features.HISTORY: [history or [""]],
        features.K: [k],
        features.EXCLUDE_HISTORY: [exclude_history],
    }}
    outputs = predict(url, model_name, body)["outputs"]
    # With server-side batching a row can carry more than k columns (the batch's largest k).
    return list(zip(outputs[features.ITEM_IDS][0][:k], outputs[features.SCORES][0][:k], strict=True))
