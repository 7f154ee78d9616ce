"""Talking to MLflow: bundles, versions, aliases, lineage, rollback."""
