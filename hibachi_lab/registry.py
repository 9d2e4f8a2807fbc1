"""MLflow tracking: where runs go, and one call to record a stage's run.

Runs go to a local SQLite database (``sqlite:///mlflow.db`` in the working folder) unless
``MLFLOW_TRACKING_URI`` says otherwise; artifacts sit beside that database in ``mlartifacts/``.
Open it with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow rejects longer parameter values.
_PARAM_LIMIT = 6000


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite database rather than in whatever folder the command ran from."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(urlparse(uri).path if uri.startswith("sqlite:////") else uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / "mlartifacts").as_uri()


def _experiment_id(client: Any, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = _artifact_root(uri)
    return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


def log_run(
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: str | os.PathLike | None = None,
    tags: dict[str, str] | None = None,
    inputs: list[tuple[Any, str]] | None = None,
    history: dict[str, list[tuple[int, float]]] | None = None,
) -> str:
    """Record one run (params, finite metrics, a folder of artifacts, datasets as (dataset, context) inputs);
    ``history`` holds per-step series (a loss curve). Returns the run id."""
    for noisy in ("alembic", "mlflow.store.db.utils", "mlflow.tracking._tracking_service.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, experiment, uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags or {}) as run:
        mlflow.log_params({key: str(value)[:_PARAM_LIMIT] for key, value in params.items()})
        mlflow.log_metrics(
            {key: float(value) for key, value in metrics.items() if value is not None and math.isfinite(float(value))}
        )
        if artifacts is not None:
            mlflow.log_artifacts(str(artifacts))
        for name, points in (history or {}).items():
            for step, value in points:
                mlflow.log_metric(name, float(value), step=int(step))
        for dataset, context in inputs or []:
            mlflow.log_input(dataset, context=context)
        return run.info.run_id
