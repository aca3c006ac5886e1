"""What the studio says of a project's mistakes, through its routes (Starlette's TestClient) on a small built
project (tests/projects/studio_checks, DuckDB): a model that exists but is disabled (`enabled: false`) is said to
be disabled, with how to enable it, wherever a name is taken; the same in a real browser is in
test_studio_browser.py."""

from __future__ import annotations

import threading
import time

import pytest
from starlette.testclient import TestClient

from sync_runner.core.errors import UserError
from sync_runner.project.target import release_dbt_duckdb
from sync_runner.serve.studio.app import Studio, build_app
from sync_runner.serve.studio.files import parse_audience

from helpers.studio_projects import CHECKS, DISABLED, served_studio, settings


@pytest.fixture(scope="module")
def checks(new_project):
    project = new_project("duckdb", name="studio_checks", source=CHECKS)
    project.dbt("build")
    project.release()
    studio = Studio(settings(project.root, project.adapter))
    client = TestClient(build_app(studio.settings, studio))
    client.get("/healthz")  # sets the CSRF cookie
    yield project, studio, client
    studio.close()


def post(client, url, body):
    return client.post(url, json=body, headers={"X-CSRF-Token": client.cookies.get("studio_csrf")})


def test_a_disabled_model_is_said_disabled_with_how_to_enable_it_not_unknown(checks):
    project, studio, client = checks
    page = client.get("/schema/retired")
    assert page.status_code == 404 and page.text == DISABLED
    assert client.get("/schema/nope").text == "unknown model 'nope'"
    answers = {
        "values": client.get("/api/values?model=retired&column=person_id"),
        "build": post(client, "/api/build", {"name": "retired"}),
        "audience": client.get("/api/audience/retired"),
    }
    assert {k: (r.status_code, r.json()) for k, r in answers.items()} == {
        "values": (400, {"error": DISABLED}), "build": (400, {"error": DISABLED}),
        "audience": (404, {"error": DISABLED})}
    trees = {"where.has": {"where": {"has": "retired"}},
             "where.and[0].not.has": {"where": {"and": [{"not": {"has": "retired"}}]}},
             "where.in audience": {"where": {"in audience": "retired"}},
             "traits[0].related": {"traits": [{"name": "n", "related": "retired", "agg": "count"}]}}
    for path, tree in trees.items():
        r = post(client, "/api/funnel", {"spec": {"parent": "people", **tree}})
        assert (r.status_code, r.json()) == (400, {"error": f"{path}: {DISABLED}"}), path
    r = post(client, "/api/funnel", {"spec": {"parent": "retired"}})
    assert (r.status_code, r.json()) == (400, {"error": f"parent: {DISABLED}"})
    r = post(client, "/api/funnel", {"spec": {"parent": "people", "where": {"has": "tier"}}})
    assert r.json() == {"error": "where.has: unknown model 'tier' (did you mean 'tiers'?)"}  # a model that is none
    with pytest.raises(UserError) as refused:
        studio.columns("retired")
    assert str(refused.value) == DISABLED


def files(project):
    return {str(p.relative_to(project.root)): p.read_bytes() for p in sorted((project.root / "models").rglob("*"))
            if p.is_file()}


SPEC = {"parent": "people", "where": {"column": "tier_code", "op": "=", "value": "gold"}}
EXTRA = {  # route -> (a body with one key too many, that key, its hint, the route's keys)
    "/api/funnel": ({"spec": SPEC, "session": "s", "limt": 5}, "limt", "limit", "spec, session, limit"),
    "/api/overlap": ({"spec": SPEC, "others": ["gold_people"], "sesion": "s"}, "sesion", "session",
                     "spec, others, label, session"),
    "/api/breakdown": ({"spec": SPEC, "column": "name", "colum": "name"}, "colum", "column",
                       "spec, column, limit, session"),
    "/api/save": ({"name": "new_one", "folder": "models/audiences", "arguments": SPEC, "overwrite": True,
                   "confirm": True}, "confirm", None,
                  "name, folder, arguments, description, opened, digest, as_of, overwrite"),
    "/api/build": ({"name": "gold_people", "force": True}, "force", None, "name, new"),
    "/api/audience/gold_people/rename": ({"new_name": "gold_two", "confirm": True}, "confirm", None, "new_name"),
    "/api/audience/gold_people/delete": ({"confrim": True}, "confrim", "confirm", "confirm"),
}


@pytest.mark.parametrize("route", list(EXTRA))
def test_a_json_body_with_a_key_its_route_does_not_read_is_refused_in_one_line(checks, route):
    """A key the route does not read (a typo, or another route's key) is a 400 naming the key and the allowed
    ones, and nothing is done: no file written, renamed or deleted, no build started, no question asked."""
    project, studio, client = checks
    body, key, near, allowed = EXTRA[route]
    before, jobs, asked = files(project), len(studio.jobs.jobs), dict(studio.queries.stats)
    r = post(client, route, body)
    hint = f" (did you mean {near!r}?)" if near else ""
    assert (r.status_code, r.json()) == (400, {"error": f"{route}: unknown key {key!r} in the request body{hint}; "
                                                        f"allowed: {allowed}"})
    assert files(project) == before and len(studio.jobs.jobs) == jobs and studio.queries.stats == asked
    # the same body without that key is answered
    if route == "/api/funnel":
        assert post(client, route, {k: v for k, v in body.items() if k != key}).json()["size"] == 3


def test_a_name_renamed_away_or_deleted_is_free_at_once_and_a_name_written_since_is_taken(checks):
    """The names taken are the project's files as they are now, not the manifest of the last build: the name an
    audience was renamed away from, or deleted under, is free at once (for another rename, back too, or a new
    audience); the name of a file written since (an audience renamed or saved, in any folder) and of a disabled
    model is taken, and so is every other model of the manifest. The next build agrees."""
    project, studio, client = checks
    folder = project.root / "models" / "audiences"

    def rename(name, new_name):
        r = post(client, f"/api/audience/{name}/rename", {"new_name": new_name})
        return r.status_code, r.json().get("error") or r.json()["sql"]

    assert rename("gold_people", "gold_two") == (200, "models/audiences/gold_two.sql")
    assert rename("gold_two", "gold_people") == (200, "models/audiences/gold_people.sql")  # and back
    assert client.get("/api/audience/gold_people").json()["file"] == "models/audiences/gold_people.sql"
    assert rename("south_people", "south_two") == (200, "models/audiences/south_two.sql")
    assert rename("silver_people", "south_people") == (200, "models/audiences/south_people.sql")  # freed above
    assert rename("south_two", "south_people") == (  # taken again, by silver's file
        400, "south_two: a model named 'south_people' already exists in the project "
             "(models/audiences/south_people.sql); pick another name")
    assert rename("south_two", "silver_people") == (200, "models/audiences/silver_people.sql")  # freed above
    assert post(client, "/api/audience/gold_people/delete", {"confirm": True}).status_code == 200
    gold = {"parent": "people", "where": {"column": "tier_code", "op": "=", "value": "gold"}}
    saved = post(client, "/api/save", {"name": "gold_people", "folder": "models", "arguments": gold})
    assert (saved.status_code, saved.json()["sql"]) == (200, "models/gold_people.sql")  # deleted above
    for name, file, why in (("gold_people", "models/gold_people.sql", "written since"),
                            ("tiers", "models/tiers.sql", "a model of the manifest"),
                            ("retired", "models/retired.sql", "a disabled model")):
        said = f"a model named {name!r} already exists in the project ({file}); pick another name"
        assert rename("south_people", name) == (400, f"south_people: {said}"), why
        refused = post(client, "/api/save", {"name": name, "folder": "models/audiences", "arguments": gold})
        assert refused.json() == {"error": said}, why
    assert sorted(p.name for p in folder.glob("*.sql")) == ["silver_people.sql", "south_people.sql"]
    assert parse_audience(folder / "south_people.sql").arguments["where"]["value"] == "silver"
    with studio.queries.worker.released():
        project.dbt("build")
    assert {a.name: a.spec["where"]["value"] for a in studio.catalog.audiences()} == {
        "gold_people": "gold", "silver_people": "S", "south_people": "silver"}


def test_a_breakdown_by_a_merged_column_whose_one_side_repeats_a_key_is_refused_not_inflated(checks):
    """people declare many:1 to regions and to tiers, merging columns of both; regions has region 'N' twice. A
    breakdown by a regions column would count the 3 people of 'N' twice: it is refused naming the relationship,
    the model and the key. A breakdown by a tiers column (one row a key) counts each person once."""
    project, studio, client = checks
    spec = {"parent": "people", "where": {"column": "tier_code", "op": "in", "value": ["gold", "silver"]}}
    r = post(client, "/api/breakdown", {"spec": spec, "column": "region__region_name"})
    assert (r.status_code, r.json()) == (400, {"error": (
        "dbt_studio: breakdown by 'region__region_name': model 'people': relationship 'region' is declared many:1, "
        "but 'regions' has 2 rows with region_code = 'N': the data contradicts the declared cardinality, so the "
        "breakdown would count rows of 'people' more than once; fix the cardinality or the data")})
    rows = post(client, "/api/breakdown", {"spec": spec, "column": "tier__tier_label"}).json()["rows"]
    # people.sql: gold 1, 2, 5; silver 3, 4; bronze 6 (not a member)
    assert sorted((r["value"], r["parent_rows"], r["members"]) for r in rows) == [
        ("Bronze", 1, 0), ("Gold", 3, 3), ("Silver", 2, 2)]


def test_a_profile_broken_while_a_job_ran_is_said_by_the_next_question_and_then_mended(checks):
    """The studio lets go of the warehouse while a job (a build, a sync) runs and opens it again after. A profile
    that cannot be read then (edited meanwhile) used to end the warehouse thread: every later question waited out
    its timeout, and the next job hung. Now the next question says why, and once the profile is mended the one
    after answers, and a job can let go again."""
    project, studio, client = checks
    profiles = project.root / "profiles.yml"
    text = profiles.read_text(encoding="utf-8")
    spec = {"parent": "people", "where": {"column": "tier_code", "op": "=", "value": "gold"}}
    try:
        with studio.queries.worker.released():
            profiles.write_text("this: [is not, a profile", encoding="utf-8")
        started = time.monotonic()
        broken = post(client, "/api/funnel", {"spec": spec})
        assert broken.status_code == 400 and "profiles.yml" in broken.json()["error"], broken.json()
        assert time.monotonic() - started < 10  # said at once, not after the question's timeout
    finally:
        profiles.write_text(text, encoding="utf-8")
    mended = post(client, "/api/funnel", {"spec": spec})
    assert mended.status_code == 200, mended.json()
    assert mended.json()["size"] == len(project.query("select 1 from " + project.relation("people")
                                                      + " where tier_code = 'gold'"))
    with studio.queries.worker.released():
        pass


def test_a_name_that_only_differs_in_case_from_a_hand_written_model_is_taken(checks):
    """A real project's model file may be `Legacy_People.sql`: the warehouse folds the unquoted name, so an audience
    saved or renamed to `legacy_people` would build onto its relation. Both are refused, and no file is written."""
    project, studio, client = checks
    legacy = project.root / "models" / "Legacy_People.sql"
    legacy.write_text("select 1 as user_id\n", encoding="utf-8")
    try:
        gold = {"parent": "people", "where": {"column": "tier_code", "op": "=", "value": "gold"}}
        refused = post(client, "/api/save", {"name": "legacy_people", "folder": "models/audiences",
                                             "arguments": gold})
        said = "a model named 'legacy_people' already exists in the project (models/Legacy_People.sql); pick " \
               "another name"
        assert refused.json() == {"error": said}
        assert not (project.root / "models" / "audiences" / "legacy_people.sql").exists()
        renamed = post(client, "/api/audience/south_people/rename", {"new_name": "legacy_people"})
        assert (renamed.status_code, renamed.json()["error"]) == (
            400, f"south_people: {said}")
    finally:
        legacy.unlink()


def test_a_name_taken_by_a_linked_model_file_names_the_link(checks, tmp_path):
    """Monorepos link shared model files (or a whole model path) into a project from outside it: a name they take
    is refused like any other, naming the file where the project has it (the link), not failing on a path outside
    the project."""
    project, studio, client = checks
    shared, folder = tmp_path / "shared", tmp_path / "shared_folder"
    for where, file in ((shared, "Shared_People.sql"), (folder, "also_shared.sql")):
        where.mkdir()
        (where / file).write_text("select 1 as user_id\n", encoding="utf-8")
    link = project.root / "models" / "Shared_People.sql"
    link.symlink_to(shared / "Shared_People.sql")
    linked_path = project.root / "linked"
    linked_path.symlink_to(folder)
    config = project.root / "dbt_project.yml"
    before = config.read_text(encoding="utf-8")
    assert 'model-paths: ["models"]' in before
    config.write_text(before.replace('model-paths: ["models"]', 'model-paths: ["models", "linked"]'), encoding="utf-8")
    gold = {"parent": "people", "where": {"column": "tier_code", "op": "=", "value": "gold"}}
    try:
        for name, file in (("shared_people", "models/Shared_People.sql"),
                           ("also_shared", str(folder.resolve() / "also_shared.sql"))):
            refused = post(client, "/api/save", {"name": name, "folder": "models/audiences", "arguments": gold})
            assert (refused.status_code, refused.json()) == (400, {"error": f"a model named {name!r} already exists "
                                                                            f"in the project ({file}); pick another "
                                                                            "name"}), name
            assert not (project.root / "models" / "audiences" / f"{name}.sql").exists()
    finally:
        config.write_text(before, encoding="utf-8")
        link.unlink()
        linked_path.unlink()


def test_a_relationship_to_a_disabled_model_says_it_is_disabled_in_every_question(checks):
    """people declares a relationship to `retired`, which is disabled: the package's macros see only enabled models,
    and the studio hands them the disabled ones (from manifest.json), so a question about people names the cause
    and the way out, not "unknown model"."""
    project, studio, client = checks
    schema = project.root / "models" / "_schema.yml"
    original = schema.read_text(encoding="utf-8")
    extra = ("            - {name: old_self, to: retired, cardinality: '1:1', "
             "join: {person_id: person_id}}\n")
    anchor = "merge_columns: true}\n"
    assert anchor in original
    schema.write_text(original.replace(anchor, anchor + extra, 1), encoding="utf-8")
    project.dbt("parse")
    try:
        answers = [post(client, "/api/funnel", {"spec": {"parent": "people"}}),
                   post(client, "/api/breakdown", {"spec": {"parent": "people"}, "column": "name"})]
        for r in answers:
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert "model 'retired' is disabled (enabled: false, models/retired.sql)" in error, error
            assert "enable it or remove the relationship" in error and "unknown model" not in error, error
    finally:
        schema.write_text(original, encoding="utf-8")
        project.dbt("parse")
    assert post(client, "/api/funnel", {"spec": {"parent": "people"}}).status_code == 200


def test_a_connection_closed_under_the_studio_is_opened_again_for_the_next_question(checks):
    """dbt-duckdb keeps one database per process, and letting go of it (`release_dbt_duckdb`, or another warehouse of
    the process opening its own file) closes the connection the studio holds, which dbt still holds as open.
    The next question reconnects and answers, instead of failing with DuckDB's "Connection already closed!" until
    the studio goes idle itself (seen in loaded runs of the browser tests, where two studios share a process)."""
    project, studio, client = checks
    worker = studio.queries.worker
    previous, worker.release_after = worker.release_after, None  # the studio keeps its connection meanwhile
    try:
        assert post(client, "/api/funnel", {"spec": {"parent": "people"}}).status_code == 200
        release_dbt_duckdb()  # as a `serve` job letting go of the file does, from another thread
        fresh = {"parent": "people", "where": {"column": "name", "op": "is not null"}}  # no answer kept from before
        after = post(client, "/api/funnel", {"spec": fresh})
        assert after.status_code == 200, after.text
        assert after.json()["size"] == 6
    finally:
        worker.release_after = previous


def test_a_question_whose_connection_is_closed_again_while_it_reruns_still_answers(checks):
    """Under load another warehouse of the process can open its own file (closing this one's database) while the
    question runs again on its new connection: it runs once more, up to three times in all, and then answers."""
    project, studio, client = checks
    worker = studio.queries.worker
    runs: list[int] = []

    def closed_under_it_twice(w):
        runs.append(w.epoch)
        w.fetch("select 1")  # the connection open
        if len(runs) <= 2:
            release_dbt_duckdb()  # mid-question, as another studio opening its file does
        return w.fetch("select 6 * 7 as answer")

    previous, worker.release_after = worker.release_after, None
    try:
        assert worker.submit(closed_under_it_twice).rows == ((42,),)
    finally:
        worker.release_after = previous
    assert len(runs) == 3 and runs[0] < runs[1] < runs[2]  # each run on a new session
    kept = list(worker.failures)[-2:]  # each failed run kept with where it failed, for whoever investigates
    assert [f.split(": ", 1)[0].split(" ", 1)[1] for f in kept] == ["attempt 1 of 3", "attempt 2 of 3"]
    assert all("Connection already closed" in f and "Traceback" in f for f in kept), kept


def test_another_studio_of_the_process_going_idle_leaves_this_one_s_connection(checks, new_project):
    """Two studios of one process on two DuckDB files (the browser tests have three): the second one letting go of
    its file when idle must not close the first one's database, which dbt-duckdb holds as the one of the process
    by then; else the first studio's next question loses its connection and every condition set it kept."""
    project, studio, client = checks
    other = new_project("duckdb", name="studio_checks_other", source=CHECKS)
    other.dbt("build")
    other.release()
    worker = studio.queries.worker
    previous, worker.release_after = worker.release_after, None
    second = Studio(settings(other.root, other.adapter))
    try:
        second.queries.worker.release_after = 0.2
        other_client = TestClient(build_app(second.settings, second))
        other_client.get("/healthz")
        assert post(other_client, "/api/funnel", {"spec": {"parent": "people"}}).status_code == 200
        spec = {"parent": "people", "where": {"column": "person_id", "op": ">", "value": 0}}
        assert post(client, "/api/funnel", {"spec": spec}).status_code == 200  # this studio's file is open again
        epoch, releases = worker.epoch, second.queries.worker.idle_releases
        deadline = time.monotonic() + 20
        while second.queries.worker.idle_releases == releases and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.queries.worker.idle_releases > releases
        fresh = {"parent": "people", "where": {"column": "person_id", "op": ">", "value": 1}}
        after = post(client, "/api/funnel", {"spec": fresh})
        assert after.status_code == 200, after.text
        assert worker.epoch == epoch  # the same session: nothing closed under it
    finally:
        second.close()
        worker.release_after = previous


def test_pages_answer_while_a_question_waits_for_the_warehouse(checks):
    """The studio has one warehouse connection, so a question waits while another runs (a funnel of 20M events
    takes seconds). The server itself must not wait with it: the audiences page and the static files answer
    meanwhile, and the question answers once the warehouse is free."""
    import requests

    project = checks[0]
    with served_studio(project.root, project.adapter) as (studio, url):
        worker = studio.queries.worker
        free, busy = threading.Event(), threading.Event()

        def slow_question(_):
            busy.set()
            free.wait(60)

        holder = threading.Thread(target=worker.submit, args=(slow_question,), kwargs={"timeout": 90})
        holder.start()
        answers: dict[str, requests.Response] = {}
        with requests.Session() as session:
            session.get(f"{url}/healthz", timeout=10)  # the CSRF cookie
            token = session.cookies.get("studio_csrf")
            asking = threading.Thread(target=lambda: answers.setdefault("funnel", session.post(
                f"{url}/api/funnel", json={"spec": {"parent": "people"}}, headers={"X-CSRF-Token": token},
                timeout=90)))
            try:
                assert busy.wait(30)
                asking.start()
                deadline = time.monotonic() + 30
                while worker._queue.qsize() == 0 and time.monotonic() < deadline:  # the funnel waits its turn
                    time.sleep(0.01)
                assert worker._queue.qsize() == 1
                page = requests.get(f"{url}/audiences", timeout=10)
                script = requests.get(f"{url}/static/builder.js", timeout=10)
                assert (page.status_code, script.status_code) == (200, 200)
                assert "funnel" not in answers  # still waiting for the warehouse
            finally:
                free.set()
                holder.join(60)
                asking.join(60)
        assert answers["funnel"].status_code == 200 and answers["funnel"].json()["size"] == 6
