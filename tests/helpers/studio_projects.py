"""The studio's test projects: the audience tests' small project (data with a Python reference) and the
plant-store example, each built once per adapter and opened by the studio."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sync_runner.serve.studio.app import Settings, Studio, build_app
from sync_runner.serve.studio.files import render_file

from . import free_port
from .audience_reference import Evaluator, make_data, read_back, write_seeds

AS_OF = "2026-01-01"
# a disabled model, a many:1 relationship whose "one" side repeats a key, audiences to rename and delete
CHECKS = Path(__file__).resolve().parent.parent / "projects" / "studio_checks"
DISABLED = ("model 'retired' is disabled (enabled: false, models/retired.sql); enable it (remove its enabled: false) "
            "and build the project again")
# The audiences the other audiences and the overlap refer to (built from files our formatter writes).
BASE = {
    "c_has": {"has": "orders"},
    "c_eq": {"column": "region", "op": "=", "value": "North"},
    "c_old": {"column": "age", "op": ">=", "value": 50},
    # written by the studio's formatter too, and built: nested groups, every value kind, hostile text
    "c_nested": {"and": [
        {"or": [{"column": "region", "op": "in", "value": ["North", None, "O'Brien -- x"]},
                {"not": {"has": "orders", "where": {"column": "status", "op": "=", "value": "{{ 'paid' }}"}}}]},
        {"not": {"column": "email", "op": "contains", "value": "#} {% raw %}"}},
        {"performed": "events", "within_days": 90, "times": {"op": "<=", "value": 6}},
    ]},
    "c_having": {"has": "orders", "where": {"column": "amount", "op": "between", "value": [10, 90.5]},
                 "having": [{"agg": "count", "op": ">=", "value": 2}, {"agg": "max", "column": "amount", "op": ">",
                                                                       "value": 30}]},
}
HOSTILE = ["User 1", "O'Brien -- x", "{{ var('x') }}", "{% raw %}", "é ü 中文 🌱", "back\\slash\\", "#} {#",
           "'; drop table users; --", 'say "hi"', "line\nbreak"]


def audience_args(where: Any, **extra: Any) -> dict[str, Any]:
    return {"parent": "users", **({"where": where} if where is not None else {}), **extra, "as_of": AS_OF}


class Built:
    """A built copy of the audiences test project, its reference evaluator and a studio on it."""

    def __init__(self, project: Any) -> None:
        self.project = project
        self.data = make_data()
        write_seeds(project.root, self.data)
        folder = project.root / "models" / "generated"
        for name, where in BASE.items():
            (folder / f"{name}.sql").write_text(render_file(audience_args(where), None, name), encoding="utf-8")
        project.dbt("build")
        self.tables = read_back(project)
        self.ev = Evaluator(self.tables)
        self.ev.audiences = {n: self.ev.audience(w) for n, w in BASE.items()}
        project.release()
        self.studio = Studio(settings(project.root, project.adapter))

    def expected(self, where: Any) -> set[str]:
        return self.ev.audience(where)

    def close(self) -> None:
        self.studio.close()


def settings(root: Path, adapter: str, **kwargs: Any) -> Settings:
    from sync_runner.project.target import DbtTarget

    return Settings(DbtTarget(root, root, adapter), allowed_hosts=("testserver",), **kwargs)


@contextmanager
def served_studio(root: Path, adapter: str) -> Iterator[tuple[Studio, str]]:
    """The studio on a built project, served by uvicorn in a thread as `dbt-studio studio` serves it: (the studio,
    its URL)."""
    import uvicorn

    port = free_port()
    config = settings(root, adapter, port=port)
    studio = Studio(config)
    server = uvicorn.Server(uvicorn.Config(build_app(config, studio), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield studio, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        studio.close()
