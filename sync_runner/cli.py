"""The `dbt-studio` command: a thin click shell over the library.

Every user mistake surfaces as a `UserError` and is printed as one line with exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import UserError


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
    from .generate import generate as run

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
    from .demo import run_demo

    report = run_demo(directory, users=users, seed=seed, echo=click.echo)
    click.echo("")
    click.echo(_table(["built", "type", "rows"],
                      [[b.name, b.resource_type, f"{b.rows:,}"] for b in report.built]))
    click.echo(f"\nDemo built {len(report.built)} relations in {report.seconds:.1f}s in {report.directory}.")
    click.echo(f"Explore it:  cd {report.directory} && dbt build --profiles-dir . --vars "
               f"'{{raw_data_dir: data}}'")


@cli.command()
@click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
def validate(project_dir: Path, as_json: bool) -> None:
    """Check the dbt_studio configuration of every model in target/manifest.json."""
    from .artifacts import load_manifest
    from .validate import validate_manifest

    manifest = load_manifest(project_dir)
    problems = validate_manifest(manifest)
    models = manifest.studio_models()
    if as_json:
        click.echo(json.dumps({"models": [m.name for m in models],
                               "problems": [vars(p) | {"text": str(p)} for p in problems]}, indent=2))
    else:
        for model in models:
            click.echo(f"{model.name}  ({model.config_file})")
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"{len(models)} model(s) with dbt_studio config, {len(problems)} problem(s)")
    if problems:
        sys.exit(2)


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
