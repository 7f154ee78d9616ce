"""The guard's webhook receiver (``guard serve``) and its registration on MLflow (``guard install``).

MLflow 3 signs each delivery with HMAC-SHA256 over ``"{delivery_id}.{timestamp}.{body}"``, sent as
``X-MLflow-Signature: v1,<base64>`` with ``X-MLflow-Delivery-Id`` and ``X-MLflow-Timestamp``
(``mlflow/webhooks/delivery.py``). A delivery with a bad or missing signature, or a timestamp
outside ``MAX_SKEW`` seconds (a replay), gets 401 and changes nothing. A verified alias or tag
event on a kernel makes the guard check that kernel at once and revert what the audit does not
back. Deliveries are fire-and-forget (MLflow retries a few times, then drops them), so the
scheduler's interval check (``guard check --repair``) is the backstop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.errors import ConfigurationError
from kernel_lifecycle.guard.aliases import check
from kernel_lifecycle.guard.tags import check_tags
from kernel_lifecycle.registry.tracking import client
from kernel_lifecycle.settings import get_settings

if TYPE_CHECKING:
    from email.message import Message

    from mlflow import MlflowClient
    from mlflow.entities.webhook import Webhook

log = logging.getLogger("kernel_lifecycle.guard")

WEBHOOK_NAME = "kernel-lifecycle-guard"
EVENTS = (
    "model_version_alias.created",
    "model_version_alias.deleted",
    "model_version_tag.set",
    "model_version_tag.deleted",
)
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
MAX_SKEW = 300  # seconds a delivery's timestamp may differ from our clock


class SignatureError(Exception):
    """A delivery whose signature or timestamp does not verify."""


def secret() -> str:
    value = get_settings().guard_secret
    if value is None or not value.get_secret_value():
        raise ConfigurationError(
            "the guard needs KL_GUARD_SECRET: the secret MLflow signs webhooks with; set the same "
            "value for `guard install` and `guard serve`"
        )
    return value.get_secret_value()


def sign(key: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(key: str, headers: Mapping[str, str] | Message, body: bytes, *, now: float | None = None) -> None:
    delivery_id, timestamp, signature = (headers.get(h) for h in (DELIVERY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not (delivery_id and timestamp and signature):
        raise SignatureError(f"missing {DELIVERY_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > MAX_SKEW:
        raise SignatureError(f"timestamp {timestamp!r} is not within {MAX_SKEW} s of now (a replay?)")
    if not hmac.compare_digest(sign(key, delivery_id, timestamp, body), signature):
        raise SignatureError("signature does not match KL_GUARD_SECRET")


def handle_event(event: dict[str, Any], *, delivery_id: str | None = None) -> dict[str, Any]:
    """Act on one verified delivery: check (and repair) the kernel it names."""
    entity, action, data = event.get("entity"), event.get("action"), event.get("data") or {}
    kernel = data.get("name")
    name = f"{entity}.{action}"
    if not kernel or name not in EVENTS:
        return {"event": name, "ignored": "not an alias or tag event of a model"}
    details = {"event": name, "payload": data, "delivery_id": delivery_id}
    if entity == "model_version_alias":
        result = check(do_repair=True, kernels=[kernel], source="webhook", details=details).as_dict()
    else:
        result = check_tags(kernel, str(data.get("version")), source="webhook", details=details).as_dict()
    return {"event": name, **result}


class _Handler(BaseHTTPRequestHandler):
    server_version = "kernel-lifecycle-guard"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/health":
            self._reply(404, {"ok": False})
            return
        with self.server.lock:  # type: ignore[attr-defined]
            self._reply(200, {"ok": True, **self.server.counts})  # type: ignore[attr-defined]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            verify(self.server.secret, self.headers, body)  # type: ignore[attr-defined]
        except SignatureError as exc:
            log.warning("refused a delivery from %s: %s", self.client_address[0], exc)
            self._reply(401, {"error": str(exc)})
            return
        started = time.monotonic()
        try:
            event = json.loads(body)
            result = handle_event(event, delivery_id=self.headers.get(DELIVERY_HEADER))
        # broad on purpose: any failure (a bad body, the DB, MLflow) is logged with its traceback
        # and answered 500, which MLflow retries; the scheduler's interval check backs it up
        except Exception as exc:  # noqa: BLE001
            log.exception("guard could not handle delivery %s", self.headers.get(DELIVERY_HEADER))
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})
            return
        log.info(
            "delivery %s %s (sent at %s) handled in %.2f s: %d reverted",
            self.headers.get(DELIVERY_HEADER), result.get("event"), self.headers.get(TIMESTAMP_HEADER),
            time.monotonic() - started, len(result.get("repaired") or []),
        )
        if result.get("repaired"):
            log.info("reverted %s", result["repaired"])
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.counts["deliveries"] += 1  # type: ignore[attr-defined]
            self.server.counts["reverted"] += len(result.get("repaired") or [])  # type: ignore[attr-defined]
        self._reply(200, result)

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
        log.debug("%s " + format, self.client_address[0], *args)


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Handler)
    server.secret = secret()  # type: ignore[attr-defined]
    # what /health reports: verified deliveries handled, and reverts made (tests wait on them)
    server.counts = {"deliveries": 0, "reverted": 0}  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    server.daemon_threads = True
    return server


def install(url: str) -> dict[str, Any]:
    """Create, or update in place, the guard's webhook on the MLflow server (needs an MLflow admin)."""
    from mlflow.exceptions import MlflowException

    key = secret()
    mlflow_client = client()
    try:
        existing = [w for w in _all_webhooks(mlflow_client) if w.name == WEBHOOK_NAME]
        description = "kernel-lifecycle guard: reverts alias and lineage/gate tag changes made outside the lifecycle"
        if existing:
            hook = mlflow_client.update_webhook(
                existing[0].webhook_id, url=url, events=list(EVENTS), secret=key, status="ACTIVE", description=description
            )
            action = "updated"
        else:
            hook = mlflow_client.create_webhook(WEBHOOK_NAME, url, list(EVENTS), description=description, secret=key)
            action = "created"
    except MlflowException as exc:
        raise ConfigurationError(
            f"MLflow refused the guard's webhook: {exc.message} (webhooks need an MLflow admin, "
            "MLFLOW_TRACKING_USERNAME/PASSWORD; a server delivers only to https and public addresses unless "
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES / MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS say otherwise: registry/README.md)"
        ) from None
    return {"action": action, "webhook_id": hook.webhook_id, "name": hook.name, "url": hook.url, "events": [str(e) for e in hook.events]}


def _all_webhooks(mlflow_client: MlflowClient) -> list[Webhook]:
    hooks, token = [], None
    while True:
        page = mlflow_client.list_webhooks(max_results=100, page_token=token)
        hooks.extend(page)
        token = page.token
        if not token:
            return hooks
