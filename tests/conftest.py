"""Shared fixtures: one real embedded PostgreSQL and one real MLflow server per test session.

Both run in a temporary stack home, exactly as ``potability up`` starts them, and are stopped
at the end. Tests that write share the database, so they clean what they depend on
(``clean_db``) rather than assuming an empty one.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from potability import config, db, migrations
from potability.config import Settings
from potability.local import services
from potability.local import stack as local_stack

# Every test gets one tier marker (unit, integration, e2e); unit tests may not open sockets or
# start processes: tests/tiers.py. pytester runs the sessions of tests/test_tiers.py.
pytest_plugins = ("tiers", "pytester")

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

ROOT = Path(__file__).resolve().parent.parent

SHARED_SESSION_FIXTURES = {
    "step chain": (
        "tests/components/test_export_step.py",
        "tests/components/test_train_step.py",
        "tests/components/test_evaluate_step.py",
        "tests/components/test_promote_step.py",
        "tests/components/test_quality_control.py",
    ),
}
"""Files that share an expensive session fixture (``step_chain``: the whole training, ~30 s a
build), handed to one xdist worker together, so it is built once instead of once per worker
that gets one of them (three builds, 100 s of the workers' time, with three workers)."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile`` (``make test``), with the files of each
    :data:`SHARED_SESSION_FIXTURES` group as one unit of work."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    group_of = {f: g for g, files in SHARED_SESSION_FIXTURES.items() for f in files}

    class SharedFixtureScheduling(LoadFileScheduling):
        # pytest-xdist's documented extension point: a scope is the unit a worker gets
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return group_of.get(scope, scope)

    return SharedFixtureScheduling(config, log)


def under_ci() -> bool:
    """CI runs .ci/run with CI=true."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _require_tool(name: str, install: str, path: Path | None = None) -> str:
    """The executable ``name`` - at ``path`` if given, else found on PATH - for a test that
    drives it. Missing, the test is skipped with ``install`` (the command that installs it) on
    a developer's machine, and fails under CI: a run that skipped what it could not test must
    not pass."""
    found = (str(path) if path.exists() else None) if path is not None else shutil.which(name)
    if found is None:
        reason = f"{name} is not installed: {install}"
        if under_ci():
            pytest.fail(f"{reason} (CI=true: every tool the suite needs must be installed)")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="session")
def require_tool() -> Callable[..., str]:
    """``require_tool(name, install, path=None)``: the path of a tool the test needs, or a
    skip (locally) / failure (CI=true) naming the command that installs it."""
    return _require_tool


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("stack")
    yield home
    local_stack.down(home)


@pytest.fixture(scope="session")
def database_url(stack_home: Path) -> str:
    """The app database on a real embedded PostgreSQL, migrated and seeded."""
    url = local_stack.start_database(stack_home)
    local_stack.prepare_database(url)
    config.update_env(
        stack_home, POTABILITY_ENV="local", POTABILITY_HOME=str(stack_home), DATABASE_URL=url
    )
    return url


def _fresh_database(database_url: str) -> Iterator[str]:
    import uuid

    name = f"fresh_{uuid.uuid4().hex[:10]}"
    admin = db.connect(Settings(database_url=database_url))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield db.with_database(database_url, name)
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[str]:
    """An empty database (no schema, no roles of its own) on the session's server; dropped
    afterwards."""
    yield from _fresh_database(database_url)


@pytest.fixture(scope="module")
def module_fresh_db(database_url: str) -> Iterator[str]:
    """:func:`fresh_db` shared by the tests of one module."""
    yield from _fresh_database(database_url)


@pytest.fixture(scope="session")
def seeded_db(database_url: str) -> Iterator[str]:
    """A database of its own, migrated and seeded like a fresh stack's (without the local
    functions' login users); shared by the session, dropped afterwards."""
    for url in _fresh_database(database_url):
        local_stack.prepare_database(url, local_users=False)
        yield url


@pytest.fixture(scope="session")
def mlflow_uri(stack_home: Path, database_url: str) -> str:
    """A real MLflow tracking server backed by the same database (``public`` schema)."""
    uri = local_stack.start_mlflow(stack_home, database_url, port=services.free_port())
    config.update_env(stack_home, MLFLOW_TRACKING_URI=uri)
    return uri


@pytest.fixture(scope="session")
def settings(stack_home: Path, database_url: str) -> Settings:
    """Settings pointing at the session's database (add MLflow with ``mlflow_uri``)."""
    return Settings(env="local", home=stack_home, database_url=database_url)


@pytest.fixture
def conn(settings: Settings) -> Iterator[db.Connection]:
    connection = db.connect(settings)
    yield connection
    connection.rollback()
    connection.close()


@pytest.fixture
def clean_db(conn: db.Connection) -> db.Connection:
    """The database with no inferences, no request keys, no lab samples and no quality-control
    runs (the seed rows stay; the status page shows the latest QC run, so one left behind
    shows in the next test's page). Partitions stay too: the session's partitions ahead are
    shared by every test."""
    cur = conn.cursor()
    cur.execute("DELETE FROM water.qc_runs")  # their metrics and drift rows cascade
    cur.execute("DELETE FROM water.water_inferences")
    cur.execute("DELETE FROM water.inference_requests")
    cur.execute(
        "TRUNCATE water.inference_hourly, water.inference_hourly_cells, "
        "water.inference_rolled_hours"
    )
    cur.execute("DELETE FROM water.water_potability WHERE source <> 'seed'")
    conn.commit()
    return conn


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real model (imputer + scaler + logistic regression, tuned threshold) saved as an
    MLflow model, for tests that need something to serve without running the pipeline."""
    import mlflow.sklearn
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import TunedThresholdClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from potability.features import FEATURE_NAMES, TARGET
    from potability.seed import load_dataset

    frame = load_dataset()
    x, y = frame[list(FEATURE_NAMES)], frame[TARGET]
    model = TunedThresholdClassifierCV(
        make_pipeline(
            SimpleImputer(strategy="median"),
            StandardScaler(),
            LogisticRegression(class_weight="balanced"),
        ),
        scoring="balanced_accuracy",
        cv=3,
        random_state=0,
    ).fit(x, y)
    path = tmp_path_factory.mktemp("model") / "tiny"
    from potability.model import sklearn_save_kwargs
    from training.candidates import model_requirements

    mlflow.sklearn.save_model(
        model,
        str(path),
        input_example=x.head(2).astype(float),
        pip_requirements=model_requirements(),  # as the train step: no inference subprocess
        **sklearn_save_kwargs(model),
    )
    from potability.serving import compiled_model  # served as registered versions are: compiled

    compiled_model.write(compiled_model.compile_estimator(model, x), path / compiled_model.FOLDER)
    return path


@pytest.fixture(scope="session")
def model_server_url(stack_home: Path, tiny_model_dir: Path) -> str:
    """Our real model server (the Vertex container's module) serving ``tiny_model_dir``."""
    from potability.serving import model_server

    return model_server.start_local(
        stack_home, str(tiny_model_dir), "water-potability", "test-1", tracking_uri=""
    )


class WebhookReceiver:
    """A real local HTTP receiver for alert webhooks: records every JSON body POSTed to it;
    ``fail_next`` answers that many requests with 500 first (to exercise the retry)."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        received: list[dict] = []
        self.received = received
        self.fail_next = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if owner.fail_next > 0:
                    owner.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def events(self, event: str | None = None) -> list[dict]:
        return [r for r in self.received if event is None or r["event"] == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 30.0) -> list[dict]:
        """The received bodies of ``event`` once there are ``count`` (or at the timeout)."""
        import time

        deadline = time.monotonic() + timeout
        while len(self.events(event)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events(event)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def no_alerts(conn: db.Connection) -> Iterator[db.Connection]:
    """No alert recorded yet (open or resolved); none left behind for the next test."""
    conn.cursor().execute("DELETE FROM water.alerts")
    conn.commit()
    yield conn
    conn.rollback()
    conn.cursor().execute("DELETE FROM water.alerts")
    conn.commit()


@pytest.fixture(scope="session")
def runs_template(database_url: str) -> Iterator[str]:
    """The name of a database migrated once for the session and never connected to again: the
    template :func:`runs_db` copies (``CREATE DATABASE ... TEMPLATE``, a file copy instead of
    every migration per test)."""
    name = f"runs_template_{uuid.uuid4().hex[:10]}"
    admin = db.connect(Settings(database_url=database_url))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        conn = db.connect(Settings(database_url=db.with_database(database_url, name)))
        try:
            migrations.migrate(conn)
        finally:
            conn.close()
        yield name
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def runs_db(database_url: str, runs_template: str) -> Iterator[Settings]:
    """Settings of a database of its own on the session's server, migrated and without any
    pipeline run or alert: for the questions asked of the whole ``water.pipeline_runs`` table
    (the latest run, the current champion, staleness). A copy of :func:`runs_template`;
    dropped afterwards."""
    name = f"runs_{uuid.uuid4().hex[:10]}"
    admin = db.connect(Settings(database_url=database_url))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name} TEMPLATE {runs_template}")
    try:
        yield Settings(env="local", database_url=db.with_database(database_url, name))
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    return services.free_port()


@pytest.fixture
def dead_database_url(tmp_path: Path) -> str:
    """A PostgreSQL URL whose socket directory has no server in it: connecting fails at once
    (no such socket), as when the database is down."""
    return f"postgresql://postgres@/potability?host={tmp_path}"


@pytest.fixture(scope="session")
def local_functions(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, model_server_url: str
) -> Iterator[tuple[Path, dict[str, str]]]:
    """The three functions started exactly as ``potability functions`` starts them (real
    functions-framework processes), in their own stack home pointing at the session's
    database and model server."""
    from potability.local import function_servers as local

    home = tmp_path_factory.mktemp("fnstack")
    config.update_env(
        home, POTABILITY_ENV="local", DATABASE_URL=database_url, MODEL_SERVER_URL=model_server_url
    )
    try:
        env = local.start(home)
        yield home, env
    finally:
        local_stack.down(home)
