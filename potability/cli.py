"""``potability`` console command: the local stack and the database chores.

potability up        start PostgreSQL (embedded unless DATABASE_URL) + migrations + seed + MLflow
potability down      stop everything ``up`` (and later steps) started, by pid
potability status    what runs
potability env       the local settings as shell exports
potability migrate   apply sql/ migrations to the configured database (GCP: via the connector);
                     --seed also seeds the training table (the migration job does)
potability seed      seed the training table from data/ (idempotent)
potability qc        quality control: live precision from lab samples + feature drift, stored
potability functions start predict, add_sample and status under functions-framework
potability samples import FILE.csv   post a regulator's lab results to add_sample
potability samples tokens list|add|revoke ID   the local regulator tokens (hashes only)
potability alerts    raise ``pipeline_stale`` if no run succeeded lately; list open alerts
potability model status|rollback|hold|release|approve|reject   operators' control of the
                     model in service (docs/operating-the-model.md)
potability maintenance   inference log: partitions ahead, prune keys, archive + drop old days
potability archive list|read --day YYYY-MM-DD   the inference log's archive, read back
potability archive query "SQL"   SQL (DuckDB) over the whole archive (docs/archive.md)
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from potability import config, db, migrations, seed
from potability.config import Settings, load_settings
from potability.governance import run_record
from potability.inference import log as inference_log
from potability.local import services
from potability.local import stack as local_stack

if TYPE_CHECKING:  # imported lazily at run time, like the commands that use it
    from potability.governance.model_control import State


def _up(args: argparse.Namespace) -> int:
    settings = Settings.from_env()  # DATABASE_URL from the real environment only
    info = local_stack.up(settings, mlflow_port=args.mlflow_port)
    print(f"PostgreSQL   {db.redact_url(info.database_url)}")
    print(f"  migrations applied now: {', '.join(info.migrations_applied) or 'none (up to date)'}")
    print(f"  water.water_potability: {info.training_rows} rows ({info.seeded_rows} seeded now)")
    print(f"MLflow       {info.mlflow_tracking_uri}")
    from pipelines import local_scheduler  # the local twin of terraform/scheduler.tf

    try:
        print(f"Schedule     {local_scheduler.start(load_settings(settings.home))}")
    except ValueError as exc:  # a PIPELINE_SCHEDULE or time zone that cannot be read
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f'State        {settings.home}  (settings: eval "$(potability env)")')
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = local_stack.down(Settings.from_env().home)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = load_settings()
    home = settings.home
    for name, state in local_stack.status(home).items():
        print(f"{name:14} {state}")
    for key, value in config.read_env(home).items():
        if key.endswith(("_URL", "_URI")):
            print(f"{key:24} {db.redact_url(value)}")
    from pipelines import local_scheduler

    upcoming = local_scheduler.next_run(home)
    print(f"{'next run':24} {upcoming or 'none (the scheduler is not running)'}")
    print(f"{'last run':24} {_last_run(settings)}")
    return 0


def _last_run(settings: Settings) -> str:
    """The latest pipeline run's outcome and log, from water.pipeline_runs."""
    if not settings.database_url and not settings.cloud_sql_instance:
        return "unknown (the stack is not up)"
    try:
        conn = db.connect(settings)
    except db.DatabaseUnavailable:
        return "unknown (the database is not running)"
    try:
        run = run_record.last_run(conn)
    finally:
        conn.close()
    if run is None:
        return "none yet"
    text = f"{run.run_id} {run.status} {run.finished_at or run.started_at:%Y-%m-%d %H:%M %Z}"
    if run.decision:
        text += f", {run.decision.replace('_', ' ')} (champion v{run.champion_version})"
    if run.error:
        text += f", error: {run.error[:120]}"
    log = services.runs_log_dir(settings.home) / f"{run.run_id}.log"
    return text + (f", log {log}" if log.exists() else "")


def _env(args: argparse.Namespace) -> int:
    for key, value in config.read_env(Settings.from_env().home).items():
        print(f"export {key}='{value}'")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    conn = db.connect(settings)
    try:
        result = migrations.migrate(conn, dict(settings.db_role_members))
        partitions = inference_log.ensure_partitions(conn, inference_log.utc_day(_now()))
        # --seed: the migration job on Google Cloud (terraform/migrate.tf) also seeds the public
        # data set - locally `potability up` does, on GCP nothing else would, and the first
        # daily run would export no rows. As water_owner, like the schema it writes into;
        # idempotent (existing sample ids are kept).
        seeded = seed.seed(conn, as_role=migrations.OWNER_ROLE) if args.seed else None
    finally:
        conn.close()
    print("applied: " + (", ".join(result.applied) if result.applied else "none (up to date)"))
    print(partitions.lines()[0])
    print(
        result.pgaudit
        if result.pgaudit == migrations.PGAUDIT_ABSENT
        else f"pgaudit: {result.pgaudit}"
    )
    for user, role in result.members.items():
        print(f"member: {user} -> {role}")
    if seeded is not None:
        print(f"seeded {seeded} new rows")
    return 0


def _now() -> datetime:
    return datetime.now(UTC)


def _maintenance(args: argparse.Namespace) -> int:
    report = inference_log.run_maintenance(load_settings())
    for line in report.lines():
        print(line)
    return 0


def _archive_list(args: argparse.Namespace) -> int:
    from potability.inference import archive as inference_archive

    settings = load_settings()
    days = inference_archive.archived_days(settings)
    print(f"{inference_archive.archive_uri(settings)}: {len(days)} archived days")
    for day in days:
        print(day.isoformat())
    return 0


def _archive_read(args: argparse.Namespace) -> int:
    from potability.inference import archive as inference_archive

    table = inference_archive.read_day(load_settings(), args.day)
    frame = table.to_pandas()
    if args.out:
        frame.to_csv(args.out, index=False)
        print(
            f"{args.day}: {len(frame)} readings (verified) written to {args.out}", file=sys.stderr
        )
    else:
        frame.to_csv(sys.stdout, index=False)
    return 0


def _archive_query(args: argparse.Namespace) -> int:
    import duckdb

    from potability.inference import archive_query

    settings = load_settings()
    sql = args.sql if args.sql != "-" else sys.stdin.read()
    try:
        if args.out:
            with open(args.out, "wb") as out:
                rows = archive_query.write_csv(settings, sql, out, args.archive)
            print(f"{rows} rows written to {args.out}", file=sys.stderr)
        else:
            archive_query.write_csv(settings, sql, sys.stdout.buffer, args.archive)
    except archive_query.ArchiveNotLocal as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:  # DuckDB's message names the mistake in the SQL
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


def _seed(args: argparse.Namespace) -> int:
    conn = db.connect(load_settings())
    try:
        print(f"seeded {seed.seed(conn)} new rows")
    finally:
        conn.close()
    return 0


def _qc(args: argparse.Namespace) -> int:
    from datetime import datetime

    from potability.quality import job as qc_job

    settings = load_settings()
    conn = db.connect(settings, timeout=qc_job.SOCKET_TIMEOUT_SECONDS)
    try:
        result = qc_job.run(conn, settings, datetime.now(UTC))
    finally:
        conn.close()
    print(
        f"quality control run {result.run_id}: {result.lab_samples} lab samples, "
        f"{len(result.matches)} matched (window +/-{settings.qc_match_window_minutes:g} min)"
    )
    for m in result.metrics:
        precision = "n/a" if m.precision is None else f"{m.precision:.3f}"
        flag = (
            f"  FLAGGED (falling towards the floor {settings.qc_precision_floor:.2f}: "
            f"CUSUM {m.alarm_statistic:.2f} >= {settings.qc_alarm_limit:g})"
            if m.flagged and m.alarm_statistic is not None
            else ""
        )
        print(
            f"  model {m.model_version:>8} {m.period:>8}: {m.matches:4d} matches, "
            f"live precision {precision}{flag}"
        )
    if result.drift:
        print(f"  drift against: {result.drift_reference.replace('_', ' ')}")
    for d in result.drift:
        psi = "n/a" if d.psi is None else f"{d.psi:.3f}"
        print(f"  drift {d.feature:16} PSI {psi:>6}  {d.status}")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    from datetime import datetime

    from potability import alerts

    settings = config.load_settings()
    conn = db.connect(settings)
    try:
        raised = run_record.check_stale(conn, settings, datetime.now(UTC))
        alerts.publish(settings, raised)
        listed = alerts.open_alerts(conn)
        conn.commit()
    finally:
        conn.close()
    if raised:
        print(f"raised now: {', '.join(a.event for a in raised)}")
    print(f"{len(listed)} open alert(s)" + (":" if listed else ""))
    for a in listed:
        print(f"  {a['raised_at']}  {a['severity']:7}  {a['event']:22}  {a['message']}")
    return 0


def _functions(args: argparse.Namespace) -> int:
    from potability.local import function_servers

    home = Settings.from_env().home
    env = function_servers.start(home, threads=args.threads, workers=args.workers)
    if args.quiet:
        print(
            "functions    "
            + ", ".join(f"{fn.target} {env[fn.env_key]}" for fn in function_servers.FUNCTIONS)
        )
        return 0
    for fn in function_servers.FUNCTIONS:
        print(
            f"{fn.target:12} {env[fn.env_key]}   ({fn.env_key}, log {home}/logs/{fn.service}.log)"
        )
    print(f"model server {env['MODEL_SERVER_URL']}   (predict answers 503 until a model is served)")
    print(
        f"regulator token: {home}/{function_servers.TOKEN_FILE} (only its sha256 is in {home}/env)"
    )
    print("OpenAPI: functions/openapi.yaml. Try:")
    for line in function_servers.example_curls(home):
        print("  " + line)
    return 0


def _samples_import(args: argparse.Namespace) -> int:
    from potability import samples_import

    settings = load_settings()
    token = settings.regulator_token.get_secret_value()
    token_file = args.token_file
    if token_file is None and not token:
        from potability.local.function_servers import TOKEN_FILE

        token_file = settings.home / TOKEN_FILE
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            print(f"error: cannot read the regulator token: {exc}", file=sys.stderr)
            return 2
    batch = min(args.batch_size or samples_import.DEFAULT_BATCH, settings.samples_max_batch)
    try:
        outcome = samples_import.import_csv(
            args.file, args.url or settings.add_sample_url, token, batch
        )
    except samples_import.ImportAborted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for line in samples_import.summary(outcome):
        print(line)
    return 1 if outcome.refused else 0


def _samples_tokens(args: argparse.Namespace) -> int:
    from potability.local import function_servers

    home = Settings.from_env().home
    if args.tokens_action == "list":
        hashes = function_servers.token_hashes(home)
        for digest in hashes:
            print(f"token:{digest[:8]}  sha256 {digest}")
        if not hashes:
            print("no regulator tokens: add_sample refuses every request")
        return 0
    if args.tokens_action == "add":
        token, ident = function_servers.new_regulator_token(home)
        print(f"{ident}  (submissions are recorded under this id)")
        print(token)
        print(
            "the token is shown once and never stored; only its sha256 is in the env file",
            file=sys.stderr,
        )
        return 0
    try:
        gone = function_servers.revoke_token(home, args.token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not gone:
        print(f"error: no regulator token matches {args.token!r}", file=sys.stderr)
        return 1
    print(f"revoked {', '.join(gone)} (running functions refuse it within 30 s)")
    return 0


def _model(args: argparse.Namespace) -> int:
    """``potability model ...`` (potability/governance/model_control.py)."""
    from potability.governance import model_control

    settings = load_settings()
    if settings.endpoint_mode == "vertex":
        from components.vertex import EndpointServing

        serving: model_control.Serving = EndpointServing(settings)
    else:
        serving = model_control.LocalServing(settings)
    try:
        if args.action == "status":
            return _model_status(model_control.state(settings, serving))
        if args.action == "rollback":
            outcome = model_control.rollback(settings, args.reason, args.version, serving)
        elif args.action == "hold":
            outcome = model_control.hold(settings, args.reason)
        elif args.action == "release":
            outcome = model_control.release(settings, args.reason)
        elif args.action == "approve":
            outcome = model_control.approve(settings, args.version, args.reason, serving)
        else:
            outcome = model_control.reject(settings, args.version, args.reason)
    except model_control.Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a switch that failed: the old model serves
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(
            "the previous model version still serves; the change is recorded as failed",
            file=sys.stderr,
        )
        return 1
    print(outcome.message)
    return 0


def _model_status(s: State) -> int:
    from potability import alerts

    print(f"{'serving':12} {('v' + s.serving) if s.serving else 'nothing answers'}")
    print(f"{'champion':12} {('v' + s.alias) if s.alias else 'no alias'} (MLflow alias)")
    print(
        f"{'promotions':12} "
        + (
            f"HELD since {alerts.iso(s.hold.since)} by {s.hold.actor}: {s.hold.reason}"
            if s.hold
            else "not held"
        )
    )
    for c in s.candidates:
        print(
            f"{'candidate':12} v{c.version} ({c.family}) since {alerts.iso(c.started_at)}, "
            f"held-out precision {c.held_out_precision}, P(better) {c.probability_better}"
        )
    for c in s.recent:
        print(
            f"  {alerts.iso(c.started_at)}  {c.action:12} v{c.version or '-':6} "
            f"{c.status:9} {c.actor}: {c.reason or ''}"
        )
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


DELEGATED: dict[str, dict[str, tuple[str, str]]] = {
    "pipeline": {
        "": (
            "pipelines.__main__",
            "the training pipeline: compile | run [--local] | publish | submit",
        ),
    },
    "gcp": {
        "bootstrap": ("potability.gcp.bootstrap", "enable the APIs the first apply needs"),
        "deploy": ("potability.gcp.deploy", "build, apply, publish, migrate, smoke-test"),
        "smoke": ("potability.gcp.smoke", "call the deployed functions as the smoke account"),
        "model": ("potability.gcp.model_job", "run `potability model ...` as the Cloud Run job"),
        "destroy": ("potability.gcp.destroy", "tear the project's resources down"),
    },
}
"""Command groups whose parsers live beside their code (each module keeps its ``main``, so
``python -m pipelines ...`` still works): ``potability pipeline ARGS`` and ``potability gcp
NAME ARGS`` hand ``ARGS`` to that module's ``main``."""


def _delegate(argv: list[str]) -> int | None:
    """Run a delegated group's command, or ``None`` if ``argv`` is not one."""
    import importlib

    if not argv or argv[0] not in DELEGATED:
        return None
    group, rest = argv[0], argv[1:]
    commands = DELEGATED[group]
    if "" in commands:
        module_name, _ = commands[""]
    elif rest and rest[0] in commands:
        module_name, _ = commands[rest[0]]
        rest = rest[1:]
    else:
        build_parser().parse_args([group, *rest[:1]])  # the group's usage and its error
        return 2
    module = importlib.import_module(module_name)
    return int(module.main(rest))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="potability",
        description="Water potability: the local stack, the data, the model, the pipeline and "
        "the Google Cloud deployment, in one command.",
        epilog="`potability COMMAND --help` describes a command. "
        "Make targets wrap the usual ones (`make help`).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start the local stack (idempotent)")
    up.add_argument("--mlflow-port", type=int, default=local_stack.DEFAULT_MLFLOW_PORT)
    up.set_defaults(func=_up)
    fns = sub.add_parser("functions", help="start the three functions locally (idempotent)")
    fns.add_argument("--threads", type=int, default=8, help="serving threads per function")
    fns.add_argument("--workers", type=int, default=1, help="processes per function")
    fns.add_argument("--quiet", action="store_true", help="one line: the functions' URLs")
    samples = sub.add_parser("samples", help="lab samples").add_subparsers(
        dest="action", required=True
    )
    imp = samples.add_parser("import", help="post a CSV of lab results to add_sample")
    imp.add_argument(
        "file",
        type=Path,
        help="CSV: the nine measurements, potability, sample_id, sampled_at, optional sensor_id",
    )
    imp.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding the regulator token (default: REGULATOR_TOKEN, "
        "else the local stack's <home>/regulator-token)",
    )
    imp.add_argument("--url", default="", help="add_sample URL (default: ADD_SAMPLE_URL)")
    imp.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="samples per request (default 100, at most SAMPLES_MAX_BATCH)",
    )
    imp.set_defaults(func=_samples_import)
    tokens = samples.add_parser("tokens", help="local regulator tokens: list, add, revoke")
    tokens_sub = tokens.add_subparsers(dest="tokens_action", required=True)
    tokens_sub.add_parser("list", help="the accepted tokens' ids and hashes")
    tokens_sub.add_parser("add", help="create a token (printed once) and accept it")
    revoke = tokens_sub.add_parser("revoke", help="stop accepting a token (within 30 s)")
    revoke.add_argument("token", help="its id token:<hex>, a hash prefix, or the token")
    tokens.set_defaults(func=_samples_tokens)

    archive = sub.add_parser(
        "archive", help="the inference log's archive (Parquet per day)"
    ).add_subparsers(dest="action", required=True)
    archive.add_parser("list", help="the archived days").set_defaults(func=_archive_list)
    read = archive.add_parser("read", help="one archived day as CSV, verified (count, sha256)")
    read.add_argument("--day", required=True, type=_day, help="UTC day, YYYY-MM-DD")
    read.add_argument("--out", type=Path, default=None, help="CSV file (default: stdout)")
    read.set_defaults(func=_archive_read)
    query = archive.add_parser(
        "query",
        help="SQL (DuckDB) over the whole archive, as the table water_archive.water_inferences "
        "(docs/archive.md); result as CSV",
    )
    query.add_argument("sql", help='the query, or "-" to read it from standard input')
    query.add_argument("--out", type=Path, default=None, help="CSV file (default: stdout)")
    query.add_argument(
        "--archive",
        default=None,
        help="archive folder (default: INFERENCE_ARCHIVE_URI, else <home>/inference-archive)",
    )
    query.set_defaults(func=_archive_query)
    fns.set_defaults(func=_functions)
    mig = sub.add_parser("migrate", help="apply pending sql/ migrations")
    mig.add_argument(
        "--seed",
        action="store_true",
        help="then seed the training table from the public data set (idempotent)",
    )
    mig.set_defaults(func=_migrate)
    model = sub.add_parser(
        "model", help="operators' control of the model in service (docs/operating-the-model.md)"
    ).add_subparsers(dest="action", required=True)
    model.add_parser("status", help="what serves, the hold, waiting candidates, recent changes")
    for name, text, version in [
        ("rollback", "serve the previous champion again (or VERSION)", "?"),
        ("hold", "hold promotions: daily runs train and evaluate but never promote", None),
        ("release", "end the hold", None),
        ("approve", "promote and deploy the waiting candidate VERSION", 1),
        ("reject", "discard the waiting candidate VERSION", 1),
    ]:
        action = model.add_parser(name, help=text)
        if version == "?":
            action.add_argument(
                "version",
                nargs="?",
                default=None,
                help="a version that served before (default: the previous)",
            )
        elif version:
            action.add_argument("version", help="the candidate's registered version")
        action.add_argument(
            "--reason", required=True, help="why (shown in the public history on the status page)"
        )
    sub.choices["model"].set_defaults(func=_model)
    for name, func, text in [
        ("down", _down, "stop the local stack"),
        ("status", _status, "show what runs"),
        ("env", _env, "print the local settings as shell exports"),
        ("seed", _seed, "seed the training table (idempotent)"),
        ("qc", _qc, "compute and store live precision and feature drift"),
        ("alerts", _alerts, "check for a stale pipeline, list the open alerts"),
        (
            "maintenance",
            _maintenance,
            "inference log: partitions ahead, prune request keys, "
            "archive and drop days past retention",
        ),
    ]:
        sub.add_parser(name, help=text).set_defaults(func=func)
    pipeline = sub.add_parser("pipeline", help=DELEGATED["pipeline"][""][1], add_help=False)
    pipeline.add_argument("args", nargs="*", help="see `potability pipeline --help`")
    gcp = sub.add_parser(
        "gcp", help="the Google Cloud deployment: " + " | ".join(DELEGATED["gcp"])
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, (_, text) in DELEGATED["gcp"].items():
        gcp.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    delegated = _delegate(argv)
    if delegated is not None:
        return delegated
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except db.DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
