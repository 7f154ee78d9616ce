"""The lifecycle service (team mode): the one holder of the lifecycle DB's URL and the MLflow
service account's credentials. Each request's HTTP basic credentials are checked against the
MLflow server's own user store (``principals``); the deciding actions (``actions``) then run
under that verified principal. ``app`` is the Flask app behind `kernel-lifecycle serve`;
``client`` is what the CLI uses when ``KL_API_URL`` is set."""
