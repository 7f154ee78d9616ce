#!/usr/bin/env bash
# Start the team's MLflow tracking + registry server: metadata in PostgreSQL, artifacts under an
# artifact root the server serves itself (clients never need direct access to the storage).
#
#   MLFLOW_BACKEND_URI   PostgreSQL URL of MLflow's own database (default: .../mlflow on localhost)
#   MLFLOW_ARTIFACT_ROOT where artifacts live: a directory, or s3://..., gs://... (default: ./mlartifacts)
#   MLFLOW_HOST / MLFLOW_PORT  where to listen (default: 127.0.0.1:5000; put a proxy with TLS and
#                        authentication in front before listening anywhere but loopback)
#   MLFLOW_APP_NAME      basic-auth for team mode: MLflow's users and permissions, configured by
#                        MLFLOW_AUTH_CONFIG_PATH (see registry/basic_auth.ini) and
#                        MLFLOW_AUTH_ADMIN_PASSWORD (registry/README.md, "Team mode")
#   MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY  a Fernet key for the webhook secrets MLflow stores (the
#                        guard's); without one each server process makes its own and the stored
#                        secret is unreadable after a restart or in another worker
set -euo pipefail

backend=${MLFLOW_BACKEND_URI:-postgresql://postgres@127.0.0.1:5432/mlflow}
artifacts=${MLFLOW_ARTIFACT_ROOT:-$PWD/mlartifacts}
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}

case "$artifacts" in
  *://*) ;;
  *) mkdir -p "$artifacts"; artifacts="file://$(cd "$artifacts" && pwd)" ;;
esac

app=()
if [ -n "${MLFLOW_APP_NAME:-}" ]; then app=(--app-name "$MLFLOW_APP_NAME"); fi
if [ -z "${MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY:-}" ]; then
  echo "start-server.sh: MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY is not set: the guard's webhook will stop" \
       "verifying after a restart (registry/README.md)" >&2
fi

exec "${PYTHON:-python3}" -m mlflow server "${app[@]}" \
  --backend-store-uri "$backend" \
  --serve-artifacts \
  --artifacts-destination "$artifacts" \
  --host "$host" \
  --port "$port" \
  --workers "${MLFLOW_WORKERS:-2}"
