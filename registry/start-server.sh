#!/usr/bin/env bash
# Start the team's MLflow tracking + registry server: metadata in PostgreSQL, artifacts under an
# artifact root the server serves itself (clients never need direct access to the storage).
#
#   MLFLOW_BACKEND_URI   PostgreSQL URL of MLflow's own database (default: .../mlflow on localhost)
#   MLFLOW_ARTIFACT_ROOT where artifacts live: a directory, or s3://..., gs://... (default: ./mlartifacts)
#   MLFLOW_HOST / MLFLOW_PORT  where to listen (default: 127.0.0.1:5000; put a proxy with TLS and
#                        authentication in front before listening anywhere but loopback)
set -euo pipefail

backend=${MLFLOW_BACKEND_URI:-postgresql://postgres@127.0.0.1:5432/mlflow}
artifacts=${MLFLOW_ARTIFACT_ROOT:-$PWD/mlartifacts}
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}

case "$artifacts" in
  *://*) ;;
  *) mkdir -p "$artifacts"; artifacts="file://$(cd "$artifacts" && pwd)" ;;
esac

exec "${PYTHON:-python3}" -m mlflow server \
  --backend-store-uri "$backend" \
  --serve-artifacts \
  --artifacts-destination "$artifacts" \
  --host "$host" \
  --port "$port" \
  --workers "${MLFLOW_WORKERS:-2}"
