"""The `dbt-studio` command: a thin click shell over the library.

Every user mistake surfaces as a `UserError` and is printed as one line with exit code 2; anything else is a
bug and keeps its traceback (with every secret redacted).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from sync_runner import __version__
from sync_runner.core.errors import UserError


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if c.replace(",", "").isdigit() else c.ljust(w)
                               for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dbt-studio")
def cli() -> None:
    """dbt-studio: identity stitching, Customer 360 features, audiences and reverse-ETL syncs on dbt."""


@cli.command()
@click.option("--users", default=10_000, show_default=True, type=click.IntRange(min=1), help="How many customers.")
@click.option("--seed", default=42, show_default=True, help="Random seed: the same seed writes the same data.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write one file per table into.")
@click.option("--format", "fmt", default="parquet", show_default=True, type=click.Choice(["parquet", "csv"]))
def generate(users: int, seed: int, out_dir: Path, fmt: str) -> None:
    """Write deterministic, messy plant-store data (users, identifies, tracks, purchases, ...)."""
    from sync_runner.demo.generate import generate as run

    def progress(done: int, total: int) -> None:
        click.echo(f"  {done:,} / {total:,} users", err=True)

    counts = run(out_dir, users=users, seed=seed, fmt=fmt, progress=progress)
    click.echo(_table(["table", "rows"], [[t, f"{n:,}"] for t, n in counts.items()]))


@cli.command()
@click.option("--dir", "directory", default="dbt-studio-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where to set up the example project.")
@click.option("--users", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=42, show_default=True)
def demo(directory: Path, users: int, seed: int) -> None:
    """Set up the plant-store example, generate data, and build it with dbt on DuckDB."""
    from sync_runner.demo.run import run_demo

    report = run_demo(directory, users=users, seed=seed, echo=click.echo)
    click.echo("")
    click.echo(_table(["built", "type", "rows"],
                      [[b.name, b.resource_type, f"{b.rows:,}"] for b in report.built]))
    files = sorted((report.directory / "syncs").glob("*.jsonl")) if (report.directory / "syncs").is_dir() else []
    click.echo(f"\nDemo built {len(report.built)} relations and ran {len(report.syncs) + len(report.resyncs)} syncs "
               f"in {report.seconds:.1f}s in {report.directory}.")
    if files:
        click.echo(f"Synced records: {report.directory / 'syncs'} ({len(files)} files, one per sync run)")
    click.echo(f"Explore it:  cd {report.directory} && dbt build --profiles-dir . --vars '{{raw_data_dir: data}}'"
               " && dbt-studio plan")
    click.echo(f"Open the studio:  dbt-studio studio --project-dir {report.directory}")


def _project_root(_ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    return project_root(value)


def project_root(value: Path) -> Path:
    """`--project-dir` as given, when it is a dbt project's root (it has dbt_project.yml, or dbt's artifacts: a
    copy of target/ is enough for validate); else one line that says where the root is (run from a folder inside
    a project, such as models/) or that there is none."""
    root = value.resolve()
    if (root / "dbt_project.yml").is_file() or (root / "target" / "manifest.json").is_file():
        return value
    parent = next((p for p in root.parents if (p / "dbt_project.yml").is_file()), None)
    if parent is not None:
        raise UserError(f"{root} is inside the dbt project {parent}, not its root: run this in {parent}, or pass "
                        f"--project-dir {parent}")
    raise UserError(f"no dbt_project.yml in {root}: run this in a dbt project's root, or pass --project-dir")


def _project_options(fn):
    fn = click.option("--target", "-t", default=None, help="dbt target (default: the profile's).")(fn)
    fn = click.option("--profiles-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
                      help="Where profiles.yml is (default: the project dir if it has one, else ~/.dbt).")(fn)
    return click.option("--project-dir", default=".", show_default=True, callback=_project_root,
                        type=click.Path(file_okay=False, path_type=Path))(fn)


def _print_reports(reports, as_json: bool, planned_only: bool = False) -> None:
    from sync_runner.core.redact import REDACT

    if as_json:
        click.echo(REDACT(json.dumps({"syncs": [r.as_dict() for r in reports]}, indent=2, default=str)))
        return
    rows = []
    for r in reports:
        p = r.planned
        rows.append([r.sync, r.model, r.destination, r.status, f"{p.get('insert', 0):,}", f"{p.get('update', 0):,}",
                     f"{p.get('delete', 0) + p.get('clear', 0):,}"]
                    + ([] if planned_only else [f"{r.acknowledged:,}", f"{r.rejected:,}", f"{r.seconds:.1f}s"]))
    headers = ["sync", "model", "destination", "status", "adds", "changes", "deletes"]
    click.echo(_table(headers + ([] if planned_only else ["acked", "rejected", "time"]), rows))
    for r in reports:
        if r.full_resync:
            click.echo(f"{r.sync}: full resync (first run, --full-resync, or a changed primary key / mapping / mode):"
                       " every row is sent, no deletes")
        if r.message:
            click.echo(f"{r.sync}: {REDACT(r.message)}", err=r.status == "failed" or bool(r.problem))
        for line in r.alerts:
            click.echo(f"{r.sync}: {REDACT(line)}", err=True)
        if planned_only and r.sample.get("rows"):
            click.echo(f"{r.sync}: sample")
            cols = [c for c in r.sample["columns"] if c.lower() not in ("_seq", "_n")]
            idx = [r.sample["columns"].index(c) for c in cols]
            click.echo(_table(cols, [[REDACT(row[i]) if row[i] is not None else "" for i in idx]
                                     for row in r.sample["rows"]]))


class _ProgressBar:
    """One line per sync, redrawn in place on a terminal; silent otherwise. With DBT_STUDIO_PROGRESS=lines (the
    studio sets it for the syncs it starts) each step is a plain line, so a page can show it live."""

    def __init__(self) -> None:
        self.lines = os.environ.get("DBT_STUDIO_PROGRESS") == "lines"
        self.enabled = sys.stderr.isatty() or self.lines

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        if self.lines:
            click.echo(f"{name}: {done:,}/{total:,} rows sent", err=True)
            return
        width = 30
        filled = int(width * min(done, total) / total)
        click.echo(f"\r{name} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}", nl=False, err=True)
        if done >= total:
            click.echo("", err=True)


def _note_edited_after_parse(project_dir: Path) -> None:
    """A note on stderr when model files changed after dbt last wrote target/manifest.json: the runner reads the
    manifest, so an edited sync or key would silently not be the one that runs."""
    from sync_runner.project.artifacts import edited_after_manifest

    changed = edited_after_manifest(project_dir)
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        click.echo(f"note: {', '.join(changed[:3])}{more} changed after target/manifest.json was written; this "
                   "reads the manifest as it is: run `dbt parse` (or your build) to use the changes", err=True)


def _run(project_dir: Path, profiles_dir: Path | None, target: str | None, select: tuple[str, ...],
         full_resync: bool, dry_run: bool, as_json: bool, allow_large_changes: bool = False, debug: bool = False,
         keys: str | None = None) -> None:
    from sync_runner.sync.engine import Options, exit_code, run_syncs

    only = tuple(k.strip() for k in (keys or "").split(",") if k.strip())
    if keys is not None and not only:
        raise UserError("--keys needs primary keys, comma-separated (e.g. --keys u1,u2)")
    if only and len(select) != 1:
        raise UserError("--keys sends a test sync of one sync: select it with -s <sync>")
    options = Options(select=select, full_resync=full_resync, dry_run=dry_run,
                      allow_large_changes=allow_large_changes, debug=debug, keys=only)
    _note_edited_after_parse(project_dir)
    reports = run_syncs(project_dir, profiles_dir, target, options, progress=None if as_json else _ProgressBar())
    _print_reports(reports, as_json, planned_only=dry_run)
    code = exit_code(reports)
    if code:
        sys.exit(code)


@cli.command()
@_project_options
@click.option("--select", "-s", "select", multiple=True, help="Sync or model name (glob); repeatable.")
@click.option("--full-resync", is_flag=True, help="Send every row again (never deletes).")
@click.option("--allow-large-changes", is_flag=True,
              help="Send plans that a safeguard would stop (mass deletes or changes).")
@click.option("--debug", is_flag=True, help="Keep each batch's request and response and each record's history "
              "(as debug: true on the sync); see dbt-studio debug.")
@click.option("--keys", default=None, metavar="K1,K2",
              help="A test sync: send and commit only these primary keys (one sync, selected with -s).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
def sync(project_dir: Path, profiles_dir: Path | None, target: str | None, select: tuple[str, ...],
         full_resync: bool, allow_large_changes: bool, debug: bool, keys: str | None, as_json: bool) -> None:
    """Send each sync's changes (computed in the warehouse) to its destination."""
    _run(project_dir, profiles_dir, target, select, full_resync, False, as_json, allow_large_changes, debug, keys)


@cli.command("debug")
@_project_options
@click.argument("sync_name")
@click.option("--key", required=True, help="The record's primary key (parts of a composite key joined by |).")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
def debug_record(project_dir: Path, profiles_dir: Path | None, target: str | None, sync_name: str, key: str,
                 as_json: bool) -> None:
    """One record's history in a sync: planned, sent (payload, request, response), acknowledged or rejected and why.

    The details come from runs with the debugger on (`debug: true` on the sync, or `sync --debug`); the
    acknowledged changes and an open rejection are shown for any run."""
    from sync_runner.core.redact import REDACT
    from sync_runner.sync.engine import record_history

    history = record_history(project_dir, profiles_dir, target, sync_name, key)
    if as_json:
        click.echo(REDACT(json.dumps(history, indent=2, default=str)))
        return
    if not history:
        click.echo(f"{sync_name}: no history for key {key!r} (run the sync with --debug to capture one)")
        return
    for h in history:
        line = f"{h['at']}  {h['event']:<14} {h['op'] or '':<7} run {h['run_id'] or '-'}"
        if h["attempt"] is not None and h["event"] in ("sent", "still rejected"):
            line += f"  attempt {h['attempt']}"
        if h["reason"]:
            line += f"  reason: {h['reason']}"
        click.echo(REDACT(line))
        for label in ("payload", "request", "response"):
            if h[label]:
                click.echo(REDACT(f"    {label}: " + str(h[label]).replace("\n", "\n      ")))


@cli.command()
@_project_options
@click.option("--select", "-s", "select", multiple=True, help="Sync or model name (glob); repeatable.")
@click.option("--full-resync", is_flag=True, help="Plan as if everything were sent again.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
def plan(project_dir: Path, profiles_dir: Path | None, target: str | None, select: tuple[str, ...],
         full_resync: bool, as_json: bool) -> None:
    """Dry run: the adds, changes and deletes each sync would send, with a sample; changes nothing."""
    _run(project_dir, profiles_dir, target, select, full_resync, True, as_json)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@_project_options
@click.option("--full-resync", is_flag=True, help="Send every row of the built models' syncs again.")
@click.option("--allow-large-changes", is_flag=True,
              help="Send plans that a safeguard would stop (mass deletes or changes).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report (dbt's own output goes to stderr).")
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def build(project_dir: Path, profiles_dir: Path | None, target: str | None, full_resync: bool,
          allow_large_changes: bool, as_json: bool, dbt_args: tuple[str, ...]) -> None:
    """`dbt build [DBT_ARGS...]`, then sync the models this build made (e.g. `dbt-studio build -s audiences`)."""
    from sync_runner.core.redact import REDACT
    from sync_runner.sync.orchestrate import build_and_sync

    report = build_and_sync(dbt_args, project_dir, profiles_dir, target, full_resync=full_resync,
                            allow_large_changes=allow_large_changes, dbt_output_to_stderr=as_json,
                            progress=None if as_json else _ProgressBar())
    if as_json:
        click.echo(REDACT(json.dumps(report.as_dict(), indent=2, default=str)))
    else:
        if report.syncs:
            _print_reports(report.syncs, False)
        elif not report.sync_error:
            click.echo("no sync of a model this build made")
        for message in (report.dbt_error, report.sync_error):
            if message:
                click.echo(f"error: {REDACT(message)}", err=True)
    sys.exit(report.exit_code)


@cli.command()
@_project_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8580, show_default=True, type=click.IntRange(1, 65535))
def serve(project_dir: Path, profiles_dir: Path | None, target: str | None, host: str, port: int) -> None:
    """Run the schedules of dbt_studio.yml, and receive dbt Cloud webhooks (sync what each successful job run
    built) when it has a dbt_cloud block."""
    import logging
    import signal
    import threading

    from sync_runner.project.target import resolve_target
    from sync_runner.serve.schedules import Scheduler, load_schedules, project_job, state_path
    from sync_runner.serve.webhook import serve as run_server
    from sync_runner.sync.config import has_block

    where = resolve_target(project_dir, profiles_dir, target)
    schedules = load_schedules(where.project_dir, where.profiles_dir)
    webhooks = has_block(where.project_dir, where.profiles_dir, "dbt_cloud") or not schedules
    stop = threading.Event()
    signals: list[str] = []

    def stopping(number: int, frame: Any) -> None:
        """SIGTERM or SIGINT: stop taking work; what runs finishes. A second one stops at once (exit 130)."""
        if stop.is_set():
            os._exit(130)
        signals.append(signal.Signals(number).name)
        # set from a thread: this handler may run while the main thread holds the event's own lock (in a wait)
        threading.Thread(target=stop.set, name="stopping").start()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stopping)
    worker = None
    if schedules:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        scheduler = Scheduler(schedules, state_path(where.project_dir),
                              project_job(where.project_dir, where.profiles_dir, where.target))
        click.echo(f"schedules: {', '.join(f'{s.name} ({s.cron})' for s in schedules)}", err=True)
        if not webhooks:
            scheduler.run_forever(stop)
        else:
            # uvicorn (and the multiprocessing it imports) first, here: imported by this thread while the schedules'
            # thread imported dbt, a module of it was met half-initialized and the job and serve failed
            import uvicorn  # noqa: F401

            worker = threading.Thread(target=scheduler.run_forever, args=(stop,), name="schedules")
            worker.start()
    try:
        if webhooks and not stop.is_set():  # uvicorn stops on the signal itself, then raises it again: stopping()
            run_server(host, port, project_dir, profiles_dir, target)
    finally:
        stop.set()
        if worker is not None:
            worker.join()  # a job that runs finishes
    click.echo(f"dbt-studio serve: stopped ({signals[0] if signals else 'the server ended'})", err=True)


@cli.command()
@_project_options
@click.option("--write", is_flag=True, help="Write the exposures file (default models/dbt_studio_exposures.yml).")
@click.option("--check", is_flag=True, help="Exit 1 when the exposures file is not current (for CI).")
def exposures(project_dir: Path, profiles_dir: Path | None, target: str | None, write: bool, check: bool) -> None:
    """One dbt exposure per sync (type application, depends on the synced model): print, --write or --check."""
    from sync_runner.project.target import resolve_target
    from sync_runner.sync.exposures import exposures_file

    if write and check:
        raise UserError("exposures: pass --write or --check, not both")
    wanted = exposures_file(resolve_target(project_dir, profiles_dir, target))
    if check:
        if not wanted.current:
            click.echo(f"{wanted.path} is stale: run dbt-studio exposures --write", err=True)
            sys.exit(1)
        click.echo(f"{wanted.path} is current")
    elif write:
        if wanted.current:
            click.echo(f"{wanted.path} is current")
        else:
            wanted.path.parent.mkdir(parents=True, exist_ok=True)
            wanted.path.write_text(wanted.text, encoding="utf-8")
            click.echo(f"wrote {wanted.path}")
    else:
        click.echo(wanted.text, nl=False)


@cli.command()
@_project_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; any other than 127.0.0.1 requires a token on every request.")
@click.option("--port", default=8581, show_default=True, type=click.IntRange(1, 65535))
@click.option("--release-after", default=3.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              metavar="SECONDS",
              help="On DuckDB, close the database file after this long without a query, so a `dbt build` or "
                   "another dbt-studio command can open it.")
def studio(project_dir: Path, profiles_dir: Path | None, target: str | None, host: str, port: int,
           release_after: float) -> None:
    """The Customer Studio: a local web app to build, size and sync audiences (see docs/studio.md)."""
    from sync_runner.project.target import resolve_target
    from sync_runner.serve.studio.app import Settings
    from sync_runner.serve.studio.app import serve as run_studio

    token = os.environ.get("DBT_STUDIO_TOKEN") or None
    run_studio(Settings(resolve_target(project_dir, profiles_dir, target), host=host, port=port, token=token,
                        release_after=release_after))


@cli.command()
@_project_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="Runs to show (1 or more).")
@click.option("--json", "as_json", is_flag=True)
def status(project_dir: Path, profiles_dir: Path | None, target: str | None, limit: int, as_json: bool) -> None:
    """Recent sync runs from the run log in the warehouse."""
    from sync_runner.core.redact import REDACT
    from sync_runner.sync.runs import recent_runs

    runs = recent_runs(project_dir, profiles_dir, target, limit)
    if as_json:
        click.echo(REDACT(json.dumps(runs, indent=2, default=str)))
        return
    if not runs:
        click.echo("no sync runs yet")
        return
    keys = ["sync_name", "status", "started_at", "planned_inserts", "planned_updates", "planned_deletes",
            "acknowledged", "rejected", "error"]
    click.echo(_table(keys, [[REDACT("" if r.get(k) is None else r.get(k)) for k in keys] for r in runs]))


@cli.command()
@_project_options
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
def validate(project_dir: Path, profiles_dir: Path | None, target: str | None, as_json: bool) -> None:
    """Check the dbt_studio configuration of every model in target/manifest.json, syncs and destinations.

    Columns are checked against each built model's relation in the warehouse; the YAML docs stand in only for
    models not built yet, or when the warehouse cannot be used: that is said once, and what the docs miss is then
    a warning (exit 2 counts only errors). A profile dbt cannot read or refuses is an error."""
    from sync_runner.project.artifacts import keep, load_manifest
    from sync_runner.project.package_macros import keep_compiled
    from sync_runner.project.target import WarehouseUnusable, resolve_target
    from sync_runner.validate import Problem, relation_columns, validate_manifest

    manifest = load_manifest(project_dir)
    _note_edited_after_parse(project_dir)
    note = ""
    profile: list[Problem] = []
    where = resolve_target(project_dir, profiles_dir, target)
    try:
        manifest = manifest.with_columns(relation_columns(manifest, where))
    except UserError as exc:
        profiles = (where.profiles_dir or where.project_dir) / "profiles.yml"
        if isinstance(exc, WarehouseUnusable) and exc.profile and profiles.is_file() and (
                where.project_dir / "dbt_project.yml").is_file():  # certain: the profile itself is wrong
            profile = [Problem(str(profiles), "", "", str(exc), "")]
            note = "columns checked against the YAML docs only (what they miss is a warning): the warehouse " \
                   "could not be used, see the profiles.yml error"
        else:
            note = f"columns checked against the YAML docs only (what they miss is a warning): {exc}"
        manifest = manifest.unread()
    problems = profile + validate_manifest(manifest, project_dir.resolve(), profiles_dir)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    models = manifest.studio_models()

    def shown(found: list[Problem]) -> list[dict[str, Any]]:
        return [{k: v for k, v in vars(p).items() if k not in ("kind", "severity")} | {"text": str(p)}
                for p in found]

    if as_json:
        click.echo(json.dumps({"models": [m.name for m in models], "columns_note": note or None,
                               "problems": shown(errors), "warnings": shown(warnings)}, indent=2))
    else:
        for model in models:
            source = "columns from the warehouse" if model.columns_source == "warehouse" else "documented columns"
            click.echo(f"{model.name}  ({model.config_file}; {source})")
        if note:  # information, not a problem: stdout, so that stderr holds only the problems
            click.echo(f"note: {note}")
        for problem in problems:
            click.echo(f"{problem.severity}: {problem}", err=True)
        click.echo(f"{len(models)} model(s) with dbt_studio config, {len(errors)} problem(s)"
                   + (f", {len(warnings)} warning(s)" if warnings else ""))
    if errors:
        sys.exit(2)
    keep(manifest)
    keep_compiled(manifest.path.parent)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the destination types as JSON.")
def destinations(as_json: bool) -> None:
    """Destination types: their config keys, supported modes and on_delete, and limits."""
    from sync_runner.sync.destinations import REGISTRY

    def listing(name: str, cls: Any) -> dict[str, Any]:
        fields = cls.surface().fields_by_name  # the limits are the declared defaults of the limit options
        return {"type": name, "modes": list(cls.modes), "on_delete": list(cls.on_delete),
                "required": list(cls.required), "max_rows": fields["batch_size"].default,
                "max_bytes": fields["max_bytes"].default, "concurrency": fields["concurrency"].default,
                "rate_per_second": fields["rate_per_second"].default,
                "options": {o.name: {"type": o.kind.text(), "default": o.default, "required": o.required,
                                     "secret": o.secret, "limit": o.limit, "help": o.help}
                            for o in fields.values()}}

    types = [listing(name, cls) for name, cls in sorted(REGISTRY.items())]
    if as_json:
        click.echo(json.dumps(types, indent=2))
        return
    click.echo(_table(["type", "modes", "on_delete", "rows/request", "bytes/request", "concurrency", "requests/s"],
                      [[t["type"], ", ".join(t["modes"]), ", ".join(t["on_delete"]), f"{t['max_rows']:,}",
                        f"{t['max_bytes']:,}" if t["max_bytes"] else "-", str(t["concurrency"]),
                        f"{t['rate_per_second']:g}" if t["rate_per_second"] else "-"] for t in types]))
    for t in types:
        click.echo(f"\n{t['type']}:")
        for key, o in t["options"].items():
            notes = [o["type"]] + (["required"] if o["required"] else []) + (["secret: env_var"] if o["secret"] else [])
            notes += [f"default {o['default']}"] if o["default"] is not None else []
            notes += [f"at most {o['limit']:,g}"] if o["limit"] is not None else []
            click.echo(f"  {key} ({'; '.join(notes)}): {o['help']}")


@cli.command()
@click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--mermaid", is_flag=True, help="Print a Mermaid erDiagram instead of text.")
@click.option("--json-schema", "json_schema", type=click.Choice(["dbt_studio.yml", "meta"]), default=None,
              help="Print the JSON Schema of dbt_studio.yml or of models' YAML (meta) for editors, and exit.")
def schema(project_dir: Path, mermaid: bool, json_schema: str | None) -> None:
    """Print the schema graph (parents, related and event models, relationships, cardinalities)."""
    if json_schema:
        from sync_runner.reference import schema_text

        click.echo(schema_text("dbt_studio.schema.json" if json_schema == "dbt_studio.yml" else "meta.schema.json"),
                   nl=False)
        return
    from sync_runner.audiences.render import render_mermaid, render_text
    from sync_runner.audiences.schema import load_nodes, schema_graph

    graph = schema_graph(load_nodes(project_root(project_dir)))  # (checked here: --json-schema needs no project)
    if not graph.models:
        raise UserError("no model has config.meta.dbt_studio: declare a parent model first")
    click.echo(render_mermaid(graph) if mermaid else render_text(graph))


@cli.group()
def audience() -> None:
    """Audience insights."""


@audience.command("preview")
@click.argument("model")
@_project_options
@click.option("--limit", default=5, show_default=True, type=click.IntRange(min=0), help="Members to show.")
@click.option("--json", "as_json", is_flag=True)
def audience_preview(model: str, project_dir: Path, profiles_dir: Path | None, target: str | None, limit: int,
                     as_json: bool) -> None:
    """Size of an audience after each top-level condition, and a few members by their labels."""
    from sync_runner.audiences.preview import preview
    from sync_runner.project.target import resolve_target

    where = resolve_target(project_dir, profiles_dir, target)
    result = preview(where, model, limit)
    if as_json:
        click.echo(json.dumps({"model": result.name, "parent": result.parent, "parent_rows": result.total,
                               "size": result.size, "steps": [{"condition": c, "size": n} for c, n in result.steps],
                               "labels": list(result.labels), "members": [list(map(str, m)) for m in result.members],
                               "splits": dict(result.split_sizes)}, indent=2))
        return
    click.echo(f"{result.name}: {result.size:,} of {result.total:,} {result.parent} rows")
    rows = [[f"{i}", condition, f"{size:,}"] for i, (condition, size) in enumerate(result.steps, 1)]
    if rows:
        click.echo(_table(["#", "condition (cumulative)", "size"], rows))
    if result.split_sizes:
        click.echo("\n" + _table(["split", "members"], [[g, f"{n:,}"] for g, n in result.split_sizes]))
    if result.members:
        click.echo("\n" + _table(list(result.labels), [["" if v is None else str(v) for v in m]
                                                        for m in result.members]))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception:  # a bug: it keeps its traceback, but never a secret
        import traceback

        from sync_runner.core.redact import REDACT

        click.echo(REDACT(traceback.format_exc()), err=True, nl=False)
        sys.exit(1)
