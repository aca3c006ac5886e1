"""`dbt-studio build`: `dbt build` with the user's arguments, then the syncs of the models that build made.

dbt runs in-process through `run_dbt` (dbtRunner). Afterwards `target/run_results.json` says what this
invocation built: only syncs of models that are in it and succeeded run; syncs of models that failed or were
skipped are reported as skipped; syncs of models the build did not select are left alone (their data did not
change). A run_results.json left over from an earlier invocation is never used.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.artifacts import RunResults, load_run_results
from sync_runner.project.target import dbt_target_dir, resolve_target, run_dbt
from sync_runner.sync.engine import Options, Progress, SyncReport, run_syncs
from sync_runner.sync.engine import exit_code as syncs_exit_code


@dataclass
class BuildReport:
    dbt_success: bool
    dbt_error: str = ""
    built: list[str] = field(default_factory=list)  # node unique_ids that succeeded / passed
    not_built: dict[str, str] = field(default_factory=dict)  # unique_id -> status (error, fail, skipped, ...)
    syncs: list[SyncReport] = field(default_factory=list)
    sync_error: str = ""  # a configuration problem that stopped every sync
    sync_error_code: int = 0

    @property
    def exit_code(self) -> int:
        if self.sync_error_code == 2 or syncs_exit_code(self.syncs) == 2:
            return 2
        if not self.dbt_success or self.sync_error_code or any(r.status == "failed" for r in self.syncs):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dbt": {"success": self.dbt_success, "error": REDACT(self.dbt_error) or None, "built": self.built,
                    "not_built": self.not_built},
            "syncs": [r.as_dict() for r in self.syncs],
            "error": REDACT(self.sync_error) or None,
            "exit_code": self.exit_code,
        }


def exposure_syncs(dbt_args: Sequence[str]) -> tuple[str, ...]:
    """The sync names of `-s +exposure:<name>` selectors, when every selector given is one; else ()."""
    selectors: list[str] = []
    args = list(dbt_args)
    for i, arg in enumerate(args):
        if arg in ("-s", "--select", "--models", "-m") :
            for value in args[i + 1:]:
                if value.startswith("-"):
                    break
                selectors += value.split()
        elif arg.startswith(("--select=", "--models=")):
            selectors += arg.split("=", 1)[1].split()
    names = []
    for selector in selectors:
        bare = selector.strip("+").split("+")[0]
        if not bare.startswith("exposure:"):
            return ()
        names.append(bare.removeprefix("exposure:").split(".")[-1])
    return tuple(names)


def build_and_sync(dbt_args: Sequence[str], project_dir: Path | str = ".", profiles_dir: Path | str | None = None,
                   target: str | None = None, *, full_resync: bool = False, quiet: bool = False,
                   dbt_output_to_stderr: bool = False, progress: Progress | None = None,
                   allow_large_changes: bool = False) -> BuildReport:
    """Run `dbt build <dbt_args>`, then sync what it built. Config errors of the syncs raise UserError.

    When every selector of `-s` / `--select` is an exposure (`+exposure:<sync>`, as `dbt-studio exposures`
    writes one per sync), only those syncs run: the build made their models' upstream, and a model's other syncs
    were not asked for."""
    where = resolve_target(project_dir, profiles_dir, target)
    project_dir, profiles = where.project_dir, where.profiles_dir
    artifacts = dbt_target_dir(project_dir, dbt_args)
    results_path = artifacts / "run_results.json"
    before = results_path.stat().st_mtime_ns if results_path.is_file() else None

    redirect = contextlib.redirect_stdout(sys.stderr) if dbt_output_to_stderr else contextlib.nullcontext()
    with redirect:
        result = run_dbt(["build", *dbt_args], where, quiet=quiet, check=False)
    report = BuildReport(dbt_success=bool(result.success))
    if result.exception is not None:
        report.dbt_error = f"dbt build failed: {REDACT(result.exception)}"
    elif not result.success:
        report.dbt_error = "dbt build finished with errors"

    results = _fresh_results(project_dir, artifacts, before)
    if results is None:
        if not report.dbt_error:
            report.dbt_error = "dbt build wrote no run_results.json"
        report.sync_error = "nothing synced: this dbt build produced no run results"
        report.sync_error_code = 1
        return report
    for uid, r in results.results.items():
        if r.status in ("success", "pass"):
            if not uid.startswith("operation."):  # on-run-start/-end hooks (the package records audience sizes)
                report.built.append(uid)
        else:
            report.not_built[uid] = r.status

    options = Options(select=exposure_syncs(dbt_args), full_resync=full_resync, artifacts_dir=str(artifacts),
                      only_built=True, allow_large_changes=allow_large_changes)
    try:
        report.syncs = run_syncs(project_dir, profiles, target, options, progress=progress)
    except UserError as exc:
        report.sync_error, report.sync_error_code = REDACT(exc), exc.exit_code
    return report


def _fresh_results(project_dir: Path, artifacts: Path, before: int | None) -> RunResults | None:
    """run_results.json of the invocation that just ran, or None when it wrote none."""
    path = artifacts / "run_results.json"
    if not path.is_file():
        return None
    try:
        results = load_run_results(project_dir, str(artifacts))
    except UserError:
        return None
    # dbt rewrites the file whenever it ran nodes; an unchanged file is an earlier invocation's (dbt stopped
    # before running anything: bad arguments, a parse error)
    return results if path.stat().st_mtime_ns != before else None
