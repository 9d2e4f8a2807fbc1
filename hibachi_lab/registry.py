"""MLflow tracking: where runs go, and one call to record a stage's run.

Runs go to a local SQLite database (``sqlite:///mlflow.db`` in the working folder) unless
``MLFLOW_TRACKING_URI`` says otherwise; artifacts sit beside that database in ``mlartifacts/``.
Open it with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hibachi_lab.errors import BadInput

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow rejects longer parameter values.
_PARAM_LIMIT = 6000


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's known warnings, each filtered by its message, category and module; any other still shows.

    - SQLAlchemy 2 deprecates the ``noload`` loader that MLflow's SQL store still configures (MLflow's to fix;
      nothing a user can change);
    - the hint that integer columns cannot hold missing values is about model signatures, and MLflow gives it
      for a logged dataset too (the train split's token counts and turn indices have no missing values);
    - a local file given as a dataset's source "can be interpreted in multiple ways": MLflow registers its
      local-file source twice (for "" and "file://") and picks the same class either way.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated",
                                category=DeprecationWarning, module=r"mlflow\.store\.")
        warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer column",
                                category=UserWarning, module=r"mlflow\.types\.")
        warnings.filterwarnings("ignore", message=r"The specified dataset source can be interpreted in multiple ways",
                                category=UserWarning, module=r"mlflow\.data\.")
        yield


def tracking_uri(override: str | None = None) -> str:
    """Where runs are read and recorded: ``override`` (a --tracking-uri), else MLFLOW_TRACKING_URI, else the default."""
    return override or os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite store (relative to the working folder for ``sqlite:///name.db``)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urlparse(uri).path if uri.startswith("sqlite:////") else uri.removeprefix("sqlite:///")).resolve()


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite database rather than in whatever folder the command ran from."""
    database = _sqlite_path(uri)
    return (database.parent / "mlartifacts").as_uri() if database else None


def existing_store(override: str | None = None) -> str:
    """The tracking URI to read the registry from; a SQLite store that does not exist is bad input, because
    opening it would create an empty one and report an empty registry (e.g. when run from another folder)."""
    uri = tracking_uri(override)
    database = _sqlite_path(uri)
    if database is not None and not database.exists():
        raise BadInput(f"no MLflow store at {uri} ({database} does not exist; the first evaluate, train or replay "
                       "run creates it): run from the folder you ran them in, or pass --tracking-uri / set "
                       "MLFLOW_TRACKING_URI to that store")
    return uri


def _experiment_id(client: Any, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = _artifact_root(uri)
    return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


@quiet_mlflow()
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


# --------------------------------------------------------------------------- the student registry

STUDENT_MODEL = "hibachi-student"
PAIR_GOAL = 50_000


def _client(uri: str | None = None) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri or tracking_uri())


@quiet_mlflow()
def register_student(run_id: str, artifact_path: str, tags: dict[str, str], description: str = "") -> str:
    """Register a run's student artifacts as a version of hibachi-student with the alias ``candidate``."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.get_registered_model(STUDENT_MODEL)
    except MlflowException:
        client.create_registered_model(STUDENT_MODEL, description="LoRA students of the My Hibachi assistant")
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(STUDENT_MODEL, source, run_id=run_id, tags=tags, description=description)
    client.set_registered_model_alias(STUDENT_MODEL, "candidate", version.version)
    return str(version.version)


@quiet_mlflow()
def promote(run_id: str, force: bool = False, reason: str | None = None, uri: str | None = None) -> str:
    """Move ``production`` to the version evaluated in ``run_id`` (or any unique prefix of it, such as the 8
    characters ``status`` shows) if its gate passed, or with a recorded reason. ``uri``: the store (must exist)."""
    client = _client(existing_store(uri))
    version = _version_of_run(client, run_id)
    run_id = version.run_id
    if version.tags.get("gate_result") != "pass":
        if not force:
            raise BadInput(f"run {run_id} (version {version.version}) failed the promotion gate: "
                           f"{version.tags.get('gate_reasons', 'no reasons recorded')}. "
                           "Fix the student, or use --force --reason \"...\"")
        if not reason or not reason.strip():
            raise BadInput("--force needs --reason \"...\": the override is recorded on the version")
        client.set_model_version_tag(STUDENT_MODEL, version.version, "forced", "true")
        client.set_model_version_tag(STUDENT_MODEL, version.version, "force_reason", reason)
    client.set_registered_model_alias(STUDENT_MODEL, "production", version.version)
    return str(version.version)


def _version_of_run(client: Any, prefix: str) -> Any:
    """The latest version registered from the run whose id starts with ``prefix``; bad input when none or several."""
    if not prefix.strip():
        raise BadInput("--run: expected a run id (or its first characters, as status shows them)")
    versions = [v for v in client.search_model_versions(f"name='{STUDENT_MODEL}'") if v.run_id.startswith(prefix)]
    runs = sorted({v.run_id for v in versions})
    if not runs:
        raise BadInput(f"run {prefix}: no {STUDENT_MODEL} version was registered from a run with this id in "
                       f"{client.tracking_uri} (run `evaluate` first)")
    if len(runs) > 1:
        raise BadInput(f"run {prefix}: {len(runs)} evaluated runs start with it ({', '.join(runs)}); give more of the id")
    return max(versions, key=lambda v: int(v.version))


@quiet_mlflow()
def student_status(uri: str | None = None) -> dict[str, Any]:
    """The registry's versions with their gate results and aliases, and the teacher-student pairs collected.
    ``uri``: the store to read (must exist)."""
    from mlflow.exceptions import MlflowException

    client = _client(existing_store(uri))
    try:
        model = client.get_registered_model(STUDENT_MODEL)
    except MlflowException:
        model = None
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases if model else {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = sorted(client.search_model_versions(f"name='{STUDENT_MODEL}'") if model else [],
                      key=lambda v: int(v.version))
    rows = [{"version": v.version, "run_id": v.run_id, "aliases": aliases.get(str(v.version), []),
             "gate_result": v.tags.get("gate_result"), "mean_similarity": v.tags.get("mean_similarity"),
             "wrong_answers": v.tags.get("wrong_answers"), "student": v.tags.get("student"),
             "forced": v.tags.get("forced") == "true"} for v in versions]
    pairs = 0
    experiment = client.get_experiment_by_name("datasets")
    if experiment is not None:
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        pairs = int(runs[0].data.metrics.get("examples_out", 0)) if runs else 0
    return {"versions": rows, "pairs": pairs, "pair_goal": PAIR_GOAL}
