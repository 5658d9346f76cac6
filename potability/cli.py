"""``potability``: the project's one command line - the local stack, the data, the model, the
training pipeline and the Google Cloud deployment. ``potability --help`` lists every command
with a line, in sections; ``potability COMMAND --help`` describes one.

Built on click (docs/local-mode.md, "The command line"): nested groups, help from the
docstrings, required options and choices refused with exit 2, and ``CliRunner`` to test the
parsing without a process. Each command returns its exit status; the logic stays in the
modules it calls (this file only parses, calls and prints).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from potability import config, db, migrations, seed
from potability.config import Settings, load_settings
from potability.governance import run_record
from potability.inference import log as inference_log
from potability.local import services
from potability.local import stack as local_stack

if TYPE_CHECKING:  # imported lazily at run time, like the commands that use them
    from potability.gcp.deploy import Runner
    from potability.governance.model_control import State

SECTIONS = {
    "Local stack": ("up", "down", "status", "env", "functions"),
    "Data": ("migrate", "seed", "samples", "archive", "maintenance"),
    "Model and quality": ("model", "qc", "alerts"),
    "Pipeline and Google Cloud": ("pipeline", "gcp"),
}
"""The top-level help's sections (tests/potability/test_cli.py: every command is in one)."""


class _Sections(click.Group):
    """The top-level group, its help in :data:`SECTIONS` instead of one alphabetical list."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(map(len, self.commands))
        for title, names in SECTIONS.items():
            with formatter.section(title):
                formatter.write_dl([(n, self.commands[n].get_short_help_str(limit)) for n in names])


@click.group(cls=_Sections, context_settings={"help_option_names": ["-h", "--help"]})
def commands() -> None:
    """Water potability: the local stack, the data, the model, the pipeline and the Google
    Cloud deployment, in one command. Make targets wrap the usual ones (`make help`)."""


@commands.result_callback()
def _exit_status(code: int | None) -> None:
    """A command's return value is the process's exit status."""
    raise click.exceptions.Exit(code or 0)


def main(argv: list[str] | None = None) -> int:
    """The console script (``potability = potability.cli:main``); returns the exit status."""
    try:
        commands.main(argv, prog_name="potability")
    except SystemExit as done:
        return int(done.code or 0)
    except db.DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# --- the local stack ------------------------------------------------------------------------


@commands.command()
@click.option("--mlflow-port", type=int, default=local_stack.DEFAULT_MLFLOW_PORT, show_default=True)
def up(mlflow_port: int) -> int:
    """Start the local stack (idempotent).

    PostgreSQL (embedded unless DATABASE_URL) with migrations and seed, MLflow, the daily
    schedule."""
    settings = Settings.from_env()  # DATABASE_URL from the real environment only
    info = local_stack.up(settings, mlflow_port=mlflow_port)
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


@commands.command()
def down() -> None:
    """Stop everything the local stack started, by pid."""
    stopped = local_stack.down(Settings.from_env().home)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@commands.command()
def status() -> None:
    """Show what runs, and the next and the last pipeline run."""
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


@commands.command()
def env() -> None:
    """Print the local settings as shell exports.

    In a shell: eval "$(potability env)"."""
    for key, value in config.read_env(Settings.from_env().home).items():
        print(f"export {key}='{value}'")


@commands.command()
@click.option(
    "--threads", type=int, default=8, show_default=True, help="serving threads per function"
)
@click.option("--workers", type=int, default=1, show_default=True, help="processes per function")
@click.option("--quiet", is_flag=True, help="one line: the functions' URLs")
def functions(threads: int, workers: int, quiet: bool) -> None:
    """Start predict, add_sample and status locally (idempotent)."""
    from potability.local import function_servers

    home = Settings.from_env().home
    env = function_servers.start(home, threads=threads, workers=workers)
    if quiet:
        print(
            "functions    "
            + ", ".join(f"{fn.target} {env[fn.env_key]}" for fn in function_servers.FUNCTIONS)
        )
        return
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


# --- the data -------------------------------------------------------------------------------


@commands.command()
@click.option(
    "--seed",
    "and_seed",
    is_flag=True,
    help="then seed the training table from the public data set (idempotent)",
)
def migrate(and_seed: bool) -> None:
    """Apply pending sql/ migrations (GCP: through the connector)."""
    settings = load_settings()
    conn = db.connect(settings)
    try:
        result = migrations.migrate(conn, dict(settings.db_role_members))
        partitions = inference_log.ensure_partitions(conn, inference_log.utc_day(_now()))
        # --seed: the migration job on Google Cloud (terraform/migrate.tf) also seeds the public
        # data set - locally `potability up` does, on GCP nothing else would, and the first
        # daily run would export no rows. As water_owner, like the schema it writes into;
        # idempotent (existing sample ids are kept).
        seeded = seed.seed(conn, as_role=migrations.OWNER_ROLE) if and_seed else None
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


def _now() -> datetime:
    return datetime.now(UTC)


@commands.command("seed")
def seed_command() -> None:
    """Seed the training table from data/ (idempotent)."""
    conn = db.connect(load_settings())
    try:
        print(f"seeded {seed.seed(conn)} new rows")
    finally:
        conn.close()


@commands.group()
def samples() -> None:
    """Lab samples: import a CSV, the local regulator tokens."""


@samples.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--token-file",
    type=click.Path(path_type=Path),
    default=None,
    help="file holding the regulator token (default: REGULATOR_TOKEN, "
    "else the local stack's <home>/regulator-token)",
)
@click.option("--url", default="", help="add_sample URL (default: ADD_SAMPLE_URL)")
@click.option(
    "--batch-size",
    type=int,
    default=0,
    help="samples per request (default 100, at most SAMPLES_MAX_BATCH)",
)
def import_samples(file: Path, token_file: Path | None, url: str, batch_size: int) -> int:
    """Post a CSV of lab results to add_sample.

    FILE: the nine measurements, potability, sample_id, sampled_at, optional sensor_id."""
    from potability import samples_import

    settings = load_settings()
    token = settings.regulator_token.get_secret_value()
    if token_file is None and not token:
        from potability.local.function_servers import TOKEN_FILE

        token_file = settings.home / TOKEN_FILE
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            print(f"error: cannot read the regulator token: {exc}", file=sys.stderr)
            return 2
    batch = min(batch_size or samples_import.DEFAULT_BATCH, settings.samples_max_batch)
    try:
        outcome = samples_import.import_csv(file, url or settings.add_sample_url, token, batch)
    except samples_import.ImportAborted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for line in samples_import.summary(outcome):
        print(line)
    return 1 if outcome.refused else 0


@samples.group()
def tokens() -> None:
    """Local regulator tokens: list, add, revoke (hashes only)."""


@tokens.command("list")
def tokens_list() -> None:
    """The accepted tokens' ids and hashes."""
    from potability.local import function_servers

    hashes = function_servers.token_hashes(Settings.from_env().home)
    for digest in hashes:
        print(f"token:{digest[:8]}  sha256 {digest}")
    if not hashes:
        print("no regulator tokens: add_sample refuses every request")


@tokens.command("add")
def tokens_add() -> None:
    """Create a token (printed once) and accept it."""
    from potability.local import function_servers

    token, ident = function_servers.new_regulator_token(Settings.from_env().home)
    print(f"{ident}  (submissions are recorded under this id)")
    print(token)
    print(
        "the token is shown once and never stored; only its sha256 is in the env file",
        file=sys.stderr,
    )


@tokens.command("revoke")
@click.argument("token")
def tokens_revoke(token: str) -> int:
    """Stop accepting a token (within 30 s).

    TOKEN: its id token:<hex>, a hash prefix, or the token."""
    from potability.local import function_servers

    try:
        gone = function_servers.revoke_token(Settings.from_env().home, token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not gone:
        print(f"error: no regulator token matches {token!r}", file=sys.stderr)
        return 1
    print(f"revoked {', '.join(gone)} (running functions refuse it within 30 s)")
    return 0


@commands.group()
def archive() -> None:
    """The inference log's archive (Parquet per day), read back."""


@archive.command("list")
def archive_list() -> None:
    """The archived days."""
    from potability.inference import archive as inference_archive

    settings = load_settings()
    days = inference_archive.archived_days(settings)
    print(f"{inference_archive.archive_uri(settings)}: {len(days)} archived days")
    for day in days:
        print(day.isoformat())


def _day(ctx: click.Context, param: click.Parameter, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a day (YYYY-MM-DD)") from None


OUT = click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="CSV file (default: stdout)"
)


@archive.command("read")
@click.option("--day", required=True, callback=_day, help="UTC day, YYYY-MM-DD")
@OUT
def archive_read(day: date, out: Path | None) -> None:
    """One archived day as CSV, verified (count, sha256)."""
    from potability.inference import archive as inference_archive

    frame = inference_archive.read_day(load_settings(), day).to_pandas()
    if out:
        frame.to_csv(out, index=False)
        print(f"{day}: {len(frame)} readings (verified) written to {out}", file=sys.stderr)
    else:
        frame.to_csv(sys.stdout, index=False)


# SQL may begin with a comment ("-- monthly share ..."): click would take it for an unknown
# option; ignored unknown options stay arguments (argparse kept any word with a space one).
@archive.command("query", context_settings={"ignore_unknown_options": True})
@click.argument("sql")
@OUT
@click.option(
    "--archive",
    "root",
    default=None,
    help="archive folder (default: INFERENCE_ARCHIVE_URI, else <home>/inference-archive)",
)
def archive_query(sql: str, out: Path | None, root: str | None) -> int:
    """SQL (DuckDB) over the whole archive, as CSV.

    The archive is the table water_archive.water_inferences (docs/archive.md). SQL: the query,
    or "-" to read it from standard input."""
    import duckdb

    from potability.inference import archive_query

    settings = load_settings()
    sql = sql if sql != "-" else sys.stdin.read()
    try:
        if out:
            with open(out, "wb") as sink:
                rows = archive_query.write_csv(settings, sql, sink, root)
            print(f"{rows} rows written to {out}", file=sys.stderr)
        else:
            archive_query.write_csv(settings, sql, sys.stdout.buffer, root)
    except archive_query.ArchiveNotLocal as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:  # DuckDB's message names the mistake in the SQL
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


@commands.command()
def maintenance() -> None:
    """Inference log: partitions, request keys, archive, retention.

    Partitions ahead, prune request keys, archive and drop the days past retention."""
    for line in inference_log.run_maintenance(load_settings()).lines():
        print(line)


# --- the model and its quality --------------------------------------------------------------


@commands.command()
def qc() -> None:
    """Compute and store live precision and feature drift."""
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


@commands.command()
def alerts() -> None:
    """Check for a stale pipeline, list the open alerts."""
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


@commands.group()
def model() -> None:
    """Operators' control of the model in service.

    docs/operating-the-model.md; on Google Cloud without a VPN: `potability gcp model`."""


REASON = click.option(
    "--reason", required=True, help="why (shown in the public history on the status page)"
)


def _model_control(change: Callable[[Any, Settings, Any], Any]) -> int:
    """Run ``change(model_control, settings, serving)`` and print its outcome's message (none
    for ``status``): exit 2 when refused, 1 when the switch failed (the old model serves)."""
    from potability.governance import model_control

    settings = load_settings()
    if settings.endpoint_mode == "vertex":
        from components.vertex import EndpointServing

        serving: model_control.Serving = EndpointServing(settings)
    else:
        serving = model_control.LocalServing(settings)
    try:
        outcome = change(model_control, settings, serving)
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
    if outcome is not None:
        print(outcome.message)
    return 0


@model.command("status")
def model_status() -> int:
    """What serves, the hold, waiting candidates, recent changes."""
    return _model_control(lambda mc, settings, serving: _print_state(mc.state(settings, serving)))


def _print_state(s: State) -> None:
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


@model.command()
@click.argument("version", required=False)
@REASON
def rollback(version: str | None, reason: str) -> int:
    """Serve the previous champion again, or VERSION.

    VERSION: one that served before."""
    return _model_control(lambda mc, s, serving: mc.rollback(s, reason, version, serving))


@model.command()
@REASON
def hold(reason: str) -> int:
    """Hold promotions: runs train and evaluate, never promote."""
    return _model_control(lambda mc, s, _: mc.hold(s, reason))


@model.command()
@REASON
def release(reason: str) -> int:
    """End the hold."""
    return _model_control(lambda mc, s, _: mc.release(s, reason))


@model.command()
@click.argument("version")
@REASON
def approve(version: str, reason: str) -> int:
    """Promote and deploy the waiting candidate VERSION."""
    return _model_control(lambda mc, s, serving: mc.approve(s, version, reason, serving))


@model.command()
@click.argument("version")
@REASON
def reject(version: str, reason: str) -> int:
    """Discard the waiting candidate VERSION."""
    return _model_control(lambda mc, s, _: mc.reject(s, version, reason))


# --- the training pipeline ------------------------------------------------------------------


@commands.group()
def pipeline() -> None:
    """The training pipeline: compile, run --local, publish, submit."""


def _params(ctx: click.Context, param: click.Parameter, pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--param k=v`` pairs; values are JSON when they parse (numbers, true/false), else text."""
    import json

    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"needs key=value, got {pair!r}")
        try:
            result[key.strip()] = json.loads(value)
        except ValueError:
            result[key.strip()] = value
    return result


PARAM = click.option(
    "--param", "params", multiple=True, callback=_params, metavar="KEY=VALUE", help="a parameter"
)
IMAGE = click.option("--image", default="", help="component image (default: PIPELINE_IMAGE)")


@pipeline.command("compile")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="default: pipelines/training_pipeline.yaml",
)
@IMAGE
def pipeline_compile(output: Path | None, image: str) -> None:
    """Write the pipeline YAML."""
    from pipelines.training_pipeline import YAML_PATH, compile_pipeline

    print(f"wrote {compile_pipeline(output or YAML_PATH, image=image or None)}")


@pipeline.command("run")
@click.option("--local", is_flag=True, help="under kfp.local, on the local stack")
@PARAM
@click.option("--verbose", is_flag=True, help="kfp's full output instead of one line per step")
def pipeline_run(local: bool, params: dict[str, Any], verbose: bool) -> int:
    """Run the pipeline under kfp.local, on the local stack.

    Exit 3: another run holds the lock."""
    if not local:
        print("only `run --local` runs here; use `submit` for Vertex AI", file=sys.stderr)
        return 2
    import signal

    from pipelines.local_run import PipelineBusy, run_local
    from pipelines.summary import summary_lines

    # `potability down` (SIGTERM to the group) during a run: unwind, so the run is recorded
    # as failed in water.pipeline_runs instead of staying "running".
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = load_settings()
    print(
        f"pipeline: running, {'kfp output follows' if verbose else 'one line per step'} "
        f"(state in {settings.home})",
        flush=True,
    )
    try:
        result = run_local(settings, params, progress=None if verbose else sys.stdout)
    except PipelineBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in summary_lines(settings, result.run_id, result.log_path):
        print(line)
    return 0


@pipeline.command("publish")
@click.option(
    "--host",
    default="",
    help="https://REGION-kfp.pkg.dev/PROJECT/REPO (default: PIPELINE_TEMPLATE_URI)",
)
@IMAGE
def pipeline_publish(host: str, image: str) -> int:
    """Compile and upload the pipeline to the template registry.

    The KFP registry (Artifact Registry), tagged with its hash and `latest`."""
    import tempfile

    from pipelines.publish import publish, registry_client, registry_host
    from pipelines.training_pipeline import compile_pipeline

    settings = load_settings()
    image = image or settings.pipeline_image
    if not image:
        print(
            "publish needs the project image (--image or PIPELINE_IMAGE): the components "
            "run in it on Vertex AI",
            file=sys.stderr,
        )
        return 2
    source = host or settings.pipeline_template_uri
    if not source:
        print(
            "publish needs the registry (--host or PIPELINE_TEMPLATE_URI, "
            "`terraform output pipeline_template_uri`)",
            file=sys.stderr,
        )
        return 2
    registry = registry_host(source)
    with tempfile.TemporaryDirectory() as tmp:
        template = compile_pipeline(Path(tmp) / "training_pipeline.yaml", image=image)
        published = publish(registry_client(registry), registry, template)
    print(f"published {published.package} {published.version}")
    print(f"  latest: {published.latest_uri}")
    print(f"  this version: {published.pinned_uri}")
    return 0


@pipeline.command("submit")
@click.option(
    "--template",
    default="",
    help="registry URL or local YAML (default: PIPELINE_TEMPLATE_URI, else the compiled YAML, "
    "sent inline)",
)
@PARAM
def pipeline_submit(template: str, params: dict[str, Any]) -> None:
    """Create a Vertex AI PipelineJob."""
    from google.cloud import aiplatform

    from pipelines.submit import job_spec, submit, vertex_parameters
    from pipelines.training_pipeline import YAML_PATH

    settings = load_settings()
    template = template or settings.pipeline_template_uri or str(YAML_PATH)
    job = submit(aiplatform, job_spec(settings, template, vertex_parameters(settings, params)))
    print(f"submitted {job.resource_name}")


# --- the Google Cloud deployment (potability/gcp/) ------------------------------------------


@commands.group()
def gcp() -> None:
    """Google Cloud: bootstrap, deploy, smoke, model, destroy.

    Values come from `terraform output` in terraform/; --dry-run prints every command and runs
    only the read-only ones; every step is idempotent (docs/gcp.md)."""


DRY_RUN = click.option(
    "--dry-run", is_flag=True, help="print every command; run only the read-only ones"
)


def _gcp(name: str, dry_run: bool, step: Callable[[Runner], object]) -> int:
    """Run ``step`` with a printing Runner: exit 1 on a DeployError or a ``False`` outcome."""
    from potability.gcp.deploy import DeployError, Runner

    try:
        outcome = step(Runner(dry_run=dry_run, out=lambda line: print(line, flush=True)))
    except DeployError as exc:
        print(f"gcp-{name}: {exc}", file=sys.stderr)
        return 1
    return 1 if outcome is False else 0


@gcp.command()
@click.option("--project", default="", help="default: project_id in terraform/terraform.tfvars")
@DRY_RUN
def bootstrap(project: str, dry_run: bool) -> int:
    """Enable the APIs the first `terraform apply` needs.

    Once a project (potability/gcp/bootstrap.py)."""
    from potability.gcp import bootstrap as gcp_bootstrap

    project = project or gcp_bootstrap.project_from_tfvars()
    return _gcp("bootstrap", dry_run, lambda run: gcp_bootstrap.bootstrap(run, project))


@gcp.command()
@DRY_RUN
@click.option("--tag", default="", help="image tag (default: the commit, git rev-parse)")
@click.option("--auto-approve", is_flag=True, help="pass -auto-approve to terraform apply")
@click.option("--pipeline", is_flag=True, help="the smoke test also runs the pipeline once")
@click.option("--no-smoke", is_flag=True, help="skip the smoke test")
def deploy(dry_run: bool, tag: str, auto_approve: bool, pipeline: bool, no_smoke: bool) -> int:
    """Build, pin, publish, migrate and smoke-test after an apply.

    Everything after `terraform apply`: the image built with Cloud Build and pinned by digest,
    the pipeline published, the migration job run, the smoke test (potability/gcp/deploy.py)."""
    from potability.gcp import deploy as gcp_deploy

    return _gcp(
        "deploy",
        dry_run,
        lambda run: gcp_deploy.deploy(
            run, tag=tag, auto_approve=auto_approve, smoke=not no_smoke, pipeline=pipeline
        ),
    )


@gcp.command()
@click.option("--pipeline", is_flag=True, help="also run the pipeline once, first")
@DRY_RUN
def smoke(pipeline: bool, dry_run: bool) -> int:
    """Call the deployed functions as the smoke-test account.

    One PASS/FAIL line per check; exit 1 if any failed (potability/gcp/smoke.py)."""
    from potability.gcp.smoke import run_smoke

    return _gcp("smoke", dry_run, lambda run: all(c.ok for c in run_smoke(run, pipeline=pipeline)))


@gcp.command(
    "model",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@DRY_RUN
@click.argument("model_args", nargs=-1, type=click.UNPROCESSED)
def gcp_model(dry_run: bool, model_args: tuple[str, ...]) -> int:
    """Run `potability model ARGS` as the operators' Cloud Run job.

    E.g. `potability gcp model rollback --reason "live precision fell"`: the job runs in the
    VPC, as its own account; its exit status is the command's (potability/gcp/model_job.py)."""
    from potability.gcp.model_job import run_model

    return _gcp("model", dry_run, lambda run: run_model(run, model_args))


@gcp.command()
@DRY_RUN
@click.option("--auto-approve", is_flag=True, help="pass -auto-approve to terraform apply/destroy")
def destroy(dry_run: bool, auto_approve: bool) -> int:
    """Tear the project's resources down.

    Around what stops `terraform destroy` alone (potability/gcp/destroy.py)."""
    from potability.gcp import destroy as gcp_destroy

    return _gcp("destroy", dry_run, lambda run: gcp_destroy.destroy(run, auto_approve=auto_approve))


if __name__ == "__main__":  # python -m potability.cli (tests, the local scheduler's runs)
    sys.exit(main())
