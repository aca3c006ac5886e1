"""Every route of the studio through Starlette's TestClient, on the plant-store example (DuckDB; the pages that
read the warehouse also on Snowflake): pages, the builder's JSON routes, saving (round trip, hostile values,
confinement), builds and syncs as jobs, and the security rules (Host check, token, CSRF, no secrets)."""

from __future__ import annotations

import hashlib
import html
import json
import re
import subprocess
import sys
import time

import pytest
import yaml
from starlette.testclient import TestClient

from sync_runner.serve.studio.app import Studio, build_app
from sync_runner.serve.studio.files import parse_audience

from helpers import ADAPTERS
from helpers.cli_process import ForkedProcess
from helpers.held_file import duckdb_held
from helpers.studio_projects import HOSTILE, settings

AUDIENCES = ["fiddle_leaf_visitors", "high_value_buyers", "monthly_subscribers", "owners_of_succulents",
             "viewed_not_bought"]


@pytest.fixture(scope="module", params=ADAPTERS)
def example(request, new_project, monkeypatch_module):
    monkeypatch_module.setenv("STUDIO_TEST_SECRET", "s3cr3t-value-xyz")
    project = new_project(request.param, name="studio_example")
    config = project.root / "dbt_studio.yml"
    config.write_text(config.read_text() + "  secret_hook:\n    type: http\n    url: http://127.0.0.1:9/x\n"
                      "    headers: {Authorization: \"Bearer {{ env_var('STUDIO_TEST_SECRET') }}\"}\n")
    project.dbt("build")
    project.release()
    # its jobs (builds, plans, syncs) forked from a warm interpreter; the browser tests start them as the studio
    # does for users (subprocess.Popen)
    studio = Studio(settings(project.root, project.adapter), spawn=ForkedProcess)
    client = TestClient(build_app(studio.settings, studio))
    client.get("/healthz")  # sets the CSRF cookie
    yield project, studio, client
    studio.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def post(client, url, body=None):
    return client.post(url, json=body or {}, headers={"X-CSRF-Token": client.cookies.get("studio_csrf")})


def count(project, name, where="1=1"):
    return project.query(f"select count(*) from {project.relation(name)} where {where}")[0][0]


def test_pages_render_with_the_project_s_facts(example):
    project, studio, client = example
    page = client.get("/schema").text
    assert "<svg" in page and "stg_users" in page and "many:many via stg_memberships" in page
    assert "stg_subscriptions" in page and "merges columns" in page
    columns = client.get("/schema/stg_users").text
    assert "geo_region" in columns and "sample" in columns
    assert client.get("/").status_code == 200 and "Audiences" in client.get("/").text  # redirect to the list
    listing = client.get("/audiences").text
    assert all(a in listing for a in AUDIENCES) and "hx-get=\"/audiences/sizes\"" in listing
    sizes = client.get("/audiences/sizes").text
    for name in AUDIENCES:
        row = sizes[sizes.index(f'data-audience="{name}"'):]
        row = row[:row.index("</tr>")]
        assert f'<td class="num size">{count(project, name):,}</td>' in row, name
    hv = sizes[sizes.index('data-audience="high_value_buyers"'):]
    assert f"holdout {count(project, 'high_value_buyers', 'is_holdout'):,}" in hv[:hv.index("</tr>")]
    history = re.search(r'data-audience="viewed_not_bought".*?data-series=\'([^\']*)\'', sizes, re.S)
    assert history and json.loads(html.unescape(history.group(1)))[-1][1] == count(project, "viewed_not_bought")
    assert "retarget_to_files: never run" in sizes
    assert 'id="builder"' in client.get("/builder?audience=high_value_buyers").text
    assert "retarget_to_files" in client.get("/syncs").text
    for url in ("/syncs/runs", "/syncs/retarget_to_files", "/syncs/retarget_to_files/details", "/healthz",
                "/static/htmx.min.js", "/static/uPlot.iife.min.js", "/static/builder.js", "/static/studio.css"):
        assert client.get(url).status_code == 200, url
    for url in ("/syncs/nope", "/jobs/999999", "/schema/nope", "/api/audience/nope"):
        assert client.get(url).status_code == 404, url


def test_builder_schema_and_values(example):
    project, studio, client = example
    schema = client.get("/api/schema").json()
    assert schema["parents"] == ["stg_users"]
    users = schema["models"]["stg_users"]
    assert [c[0] for c in users["columns"] if c[0] == "geo_region"] == ["geo_region"]
    assert {r["to"] for r in users["relationships"]} >= {"stg_purchases", "stg_product_viewed", "stg_subscriptions"}
    assert {a["name"] for a in schema["audiences"]} == set(AUDIENCES)
    values = client.get("/api/values?model=stg_users&column=geo_region").json()["values"]
    regions = project.query(f"select geo_region, count(*) from {project.relation('stg_users')} "
                            "where geo_region is not null group by 1")
    assert sorted((v["value"], v["occurrences"]) for v in values) == sorted(regions)
    assert client.get("/api/values?model=stg_users&column=nope").status_code == 400
    assert client.get("/api/values?model=stg_users&column=geo_region;drop").status_code == 400


def test_funnel_route_matches_the_built_audience(example):
    project, studio, client = example
    opened = client.get("/api/audience/viewed_not_bought").json()
    assert opened["editable"] and opened["as_of"] == "2026-01-01"
    spec = {**opened["arguments"], "as_of": opened["as_of"]}
    result = post(client, "/api/funnel", {"spec": spec, "session": "t"}).json()
    assert result["size"] == count(project, "viewed_not_bought")
    assert result["splits"] == {"retarget": count(project, "viewed_not_bought", "split_group = 'retarget'"),
                                "holdout": count(project, "viewed_not_bought", "split_group = 'holdout'")}
    assert len(result["steps"]) == 2 and result["steps"][0]["size"] >= result["size"]
    assert result["members"]["columns"] == ["user_id", "name", "email"]
    over = post(client, "/api/overlap", {"spec": spec, "others": ["high_value_buyers", "viewed_not_bought"]}).json()
    assert over["matrix"][0][0] == over["matrix"][2][2] == over["matrix"][0][2] == result["size"]
    assert over["matrix"][1][1] == count(project, "high_value_buyers")
    down = post(client, "/api/breakdown", {"spec": spec, "column": "geo_region"}).json()["rows"]
    assert sum(r["members"] for r in down) == result["size"]
    bad = post(client, "/api/funnel", {"spec": {**spec, "where": {"column": "x; drop table y", "op": "="}}})
    assert bad.status_code == 400 and "not a column name" in bad.json()["error"]
    typo = post(client, "/api/funnel", {"spec": {**spec, "where": {"performed": "stg_product_viewed",
                                                                    "within_day": 3}}})
    assert typo.status_code == 400 and "did you mean 'within_days'" in typo.json()["error"]
    unknown = post(client, "/api/funnel", {"spec": {**spec, "where": {"column": "nope", "op": "=", "value": 1}}})
    assert unknown.status_code == 400 and "\n" not in unknown.json()["error"]


def test_every_example_audience_opened_and_saved_unchanged_keeps_its_bytes(example):
    project, studio, client = example
    for name in AUDIENCES:
        path = project.root / "models" / "audiences" / f"{name}.sql"
        before = path.read_bytes()
        opened = client.get(f"/api/audience/{name}").json()
        saved = post(client, "/api/save", {"name": name, "folder": opened["folder"], "arguments": opened["arguments"],
                                           "opened": name, "digest": opened["digest"], "as_of": opened["as_of"]})
        assert saved.status_code == 200 and saved.json()["changed"] is False, saved.text
        assert path.read_bytes() == before


def test_an_idle_studio_lets_go_of_the_duckdb_file(example):
    """A studio left open in a tab must not lock the engineer's `dbt build` out of a DuckDB file for days: after
    `release_after` seconds without a question the file is free for another process, and the next question opens
    it again with the same answer. Snowflake has no file to let go: its session stays open."""
    project, studio, client = example
    worker = studio.queries.worker
    opened = client.get("/api/audience/viewed_not_bought").json()
    spec = {**opened["arguments"], "as_of": opened["as_of"]}
    previous = worker.release_after
    worker.release_after = 0.2
    try:
        releases, epoch = worker.idle_releases, worker.epoch
        first = post(client, "/api/funnel", {"spec": spec, "session": "idle"}).json()
        assert first["size"] == count(project, "viewed_not_bought")
        if project.adapter != "duckdb":
            time.sleep(0.6)
            assert worker.idle_releases == releases
            return
        database = project.root / "target" / "warehouse.duckdb"
        opened_elsewhere = f"import duckdb; duckdb.connect({str(database)!r}).close()"
        deadline = time.monotonic() + 10
        while True:  # the release happens on the worker's thread after 0.2 s without a question
            other = subprocess.run([sys.executable, "-c", opened_elsewhere], capture_output=True, text=True)
            if other.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert other.returncode == 0, other.stderr[-500:]
        assert worker.idle_releases > releases
        studio.queries.clear_cache()  # the answer is asked of the warehouse again, not of the cache
        again = post(client, "/api/funnel", {"spec": spec, "session": "idle"}).json()
        assert again["size"] == first["size"] and again["steps"] == first["steps"]
        assert worker.epoch > epoch  # a new session: the condition sets of the old one were evaluated again
    finally:
        worker.release_after = previous


def test_a_database_held_by_another_process_is_not_taken_for_unbuilt_audiences(example):
    """While a `dbt build` in a terminal holds the DuckDB file, the audiences page says it cannot read the sizes
    and why, not that every audience is "not built"; once the file is free the sizes are back."""
    project, studio, client = example
    if project.adapter != "duckdb":
        pytest.skip("only a DuckDB file is held by another process")
    worker = studio.queries.worker
    previous = worker.release_after
    worker.release_after = 0.1
    database = project.root / "target" / "warehouse.duckdb"
    try:
        client.get("/audiences/sizes")  # the studio has the file open, then lets go of it when idle
        with duckdb_held(database) as holder:
            studio.queries.clear_cache()
            page = html.unescape(client.get("/audiences/sizes").text)
            assert page.count(">cannot read<") == 2 * len(AUDIENCES)  # each row's size and its size history
            assert page.count(f"Cannot read the sizes:</span> the warehouse is busy: another process (PID "
                              f"{holder.pid}, ") == 1
            assert "not built" not in page
        page = client.get("/audiences/sizes").text
        assert "cannot read" not in page and "not built" not in page
        assert f'{count(project, "viewed_not_bought"):,}' in page
    finally:
        worker.release_after = previous


def test_a_new_description_rewrites_only_that_model_s_entry_of_the_shared_yaml(example):
    project, studio, client = example
    yml = project.root / "models" / "audiences" / "_audiences.yml"
    sql = project.root / "models" / "audiences" / "monthly_subscribers.sql"
    before, before_sql = yml.read_text(encoding="utf-8"), sql.read_bytes()
    line = "    description: Users with a monthly subscription (users -> memberships -> subscriptions).\n"
    assert before.count(line) == 1  # the example documents its audiences in one file
    opened = client.get("/api/audience/monthly_subscribers").json()
    assert opened["description"] == line.split(": ", 1)[1].strip()
    description = "Monthly: it's {{ them }} -- é"
    saved = post(client, "/api/save", {"name": "monthly_subscribers", "folder": opened["folder"],
                                       "arguments": opened["arguments"], "opened": "monthly_subscribers",
                                       "digest": opened["digest"], "as_of": opened["as_of"],
                                       "description": description})
    assert saved.status_code == 200, saved.text
    assert saved.json()["yml"] == "models/audiences/_audiences.yml" and saved.json()["changed"] is True
    after = yml.read_text(encoding="utf-8")
    start = before.index(line)
    assert after[:start] == before[:start]
    assert after.endswith(before[start + len(line):])
    new_line = after[start:len(after) - len(before[start + len(line):])]
    assert new_line.startswith("    description: ") and new_line.count("\n") == 1
    entry = next(m for m in yaml.safe_load(after)["models"] if m["name"] == "monthly_subscribers")
    assert entry["description"].replace("{{ '{' }}", "{") == description  # as dbt renders it
    assert sql.read_bytes() == before_sql  # the arguments did not change: the SQL file neither


def test_save_refuses_bad_names_paths_and_overwrites(example):
    project, studio, client = example
    args = {"parent": "stg_users", "where": {"column": "age", "op": ">", "value": 30}}
    for name in ("../x", "Bad", "a/b", ""):
        assert post(client, "/api/save", {"name": name, "arguments": args}).status_code == 400
    for folder in ("..", "../macros", "/etc", "models/../../x"):
        r = post(client, "/api/save", {"name": "fine", "folder": folder, "arguments": args})
        assert r.status_code == 400 and "outside" in r.json()["error"], folder
    r = post(client, "/api/save", {"name": "stg_users", "folder": "models/audiences", "arguments": args,
                                   "overwrite": True})
    assert r.status_code == 400 and "already exists" in r.json()["error"]
    assert not (project.root / "models" / "audiences" / "stg_users.sql").exists()


def test_a_draft_never_overwrites_another_audience_s_file(example):
    """A draft not opened from an audience's file (a new one, or another audience opened and renamed) named like
    that audience is refused in one line, confirmed or not, and so is one named like another model of the same
    folder: the files keep every byte. The page that opened the audience saves over it."""
    project, studio, client = example
    folder = project.root / "models" / "audiences"
    args = {"parent": "stg_users", "where": {"column": "age", "op": ">", "value": 30}}
    files = {name: (folder / f"{name}.sql").read_bytes() for name in ("high_value_buyers", "purchases_with_user")}
    refused = ("high_value_buyers is an existing audience: open it from the Audiences page to edit it, or pick "
               "another name for this one")
    for overwrite in (False, True):
        r = post(client, "/api/save", {"name": "high_value_buyers", "folder": "models/audiences", "arguments": args,
                                       "overwrite": overwrite})
        assert r.status_code == 400 and r.json() == {"error": refused}, r.text
    other = client.get("/api/audience/viewed_not_bought").json()
    r = post(client, "/api/save", {"name": "high_value_buyers", "folder": other["folder"], "arguments": args,
                                   "opened": "viewed_not_bought", "digest": other["digest"], "as_of": other["as_of"],
                                   "overwrite": True})
    assert r.status_code == 400 and r.json() == {"error": refused}, r.text
    # a model that is not an audience, in the folder the draft is saved to
    r = post(client, "/api/save", {"name": "purchases_with_user", "folder": "models/audiences", "arguments": args,
                                   "overwrite": True})
    assert r.status_code == 400 and "a model named 'purchases_with_user' already exists" in r.json()["error"]
    assert {name: (folder / f"{name}.sql").read_bytes() for name in files} == files
    opened = client.get("/api/audience/high_value_buyers").json()
    r = post(client, "/api/save", {"name": "high_value_buyers", "folder": opened["folder"],
                                   "arguments": opened["arguments"], "opened": "high_value_buyers",
                                   "digest": opened["digest"], "as_of": opened["as_of"]})
    assert r.status_code == 200 and r.json()["changed"] is False, r.text


def test_saving_again_in_the_same_session_saves_and_a_change_on_disk_still_conflicts(example):
    """The builder sends back the digest of what its last save wrote: a second and third save of the same
    audience (opened, or new and not built yet) just save; a change someone else makes on disk is refused."""
    project, studio, client = example
    folder = project.root / "models" / "audiences"
    path = folder / "owners_of_succulents.sql"
    new_sql, new_yml = folder / "studio_twice.sql", folder / "studio_twice.yml"
    kept = path.read_bytes()

    def digest(file):
        return hashlib.sha256(file.read_bytes()).hexdigest()[:16]

    try:
        opened = client.get("/api/audience/owners_of_succulents").json()
        body = {"name": "owners_of_succulents", "folder": opened["folder"], "opened": "owners_of_succulents",
                "as_of": opened["as_of"], "digest": opened["digest"]}
        for columns in (["geo_region", "age"], ["age"], ["geo_region"]):
            saved = post(client, "/api/save", {**body, "arguments": {**opened["arguments"], "columns": columns}})
            assert saved.status_code == 200 and saved.json()["changed"] is True, saved.text
            assert saved.json()["digest"] == digest(path)
            assert parse_audience(path).arguments["columns"] == columns
            body["digest"] = saved.json()["digest"]  # as the page does
        assert path.read_text().startswith(kept.decode().split("{{")[0])  # the comment above the call stays
        elsewhere = path.read_text() + "-- edited in an editor\n"
        path.write_text(elsewhere)
        again = post(client, "/api/save", {**body, "arguments": {**opened["arguments"], "columns": ["age"]}})
        assert again.status_code == 400 and again.json() == {
            "error": "owners_of_succulents.sql changed on disk since it was opened: open it again"}
        assert path.read_text() == elsewhere

        args = {"parent": "stg_users", "where": {"column": "age", "op": ">", "value": 30}}
        draft = {"name": "studio_twice", "folder": "models/audiences", "description": "first"}
        first = post(client, "/api/save", {**draft, "arguments": args})
        assert first.status_code == 200 and first.json()["created"] is True, first.text
        for value, description in ((40, "first"), (50, "second")):
            saved = post(client, "/api/save", {**draft, "description": description, "opened": "studio_twice",
                                               "digest": first.json()["digest"],
                                               "arguments": {**args, "where": {**args["where"], "value": value}}})
            assert saved.status_code == 200 and saved.json()["created"] is False, saved.text
            assert saved.json()["digest"] == digest(new_sql)
            assert parse_audience(new_sql).arguments["where"]["value"] == value
            assert yaml.safe_load(new_yml.read_text())["models"][0]["description"] == description
            first = saved
        # another page's new draft of that name still asks before overwriting the file (not a model yet)
        other = post(client, "/api/save", {**draft, "arguments": args})
        assert other.status_code == 409 and "studio_twice.sql exists: confirm" in other.json()["error"]
        assert parse_audience(new_sql).arguments["where"]["value"] == 50
    finally:
        path.write_bytes(kept)
        new_sql.unlink(missing_ok=True)
        new_yml.unlink(missing_ok=True)


def test_save_and_build_a_new_audience_with_hostile_values(example):
    project, studio, client = example
    description = "VIPs {{ var('x') }} -- it's {% raw %} é 🌱 #}"
    args = {"parent": "stg_users",
            "where": {"and": [{"column": "name", "op": "not in", "value": HOSTILE},
                              {"has": "stg_purchases", "having": {"agg": "count", "op": ">=", "value": 1}}]},
            "splits": {"groups": {"a": 80, "holdout": 20}, "holdout": "holdout", "salt": "x' -- {{ }}"},
            "as_of": "2026-01-01"}
    saved = post(client, "/api/save", {"name": "studio_hostile", "folder": "models/audiences", "arguments": args,
                                       "description": description})
    sql = project.root / "models" / "audiences" / "studio_hostile.sql"
    assert saved.status_code == 200 and saved.json() == {
        "sql": "models/audiences/studio_hostile.sql", "yml": "models/audiences/studio_hostile.yml", "changed": True,
        "created": True, "digest": hashlib.sha256(sql.read_bytes()).hexdigest()[:16]}
    assert parse_audience(project.root / saved.json()["sql"]).arguments == args
    asked = post(client, "/api/funnel", {"spec": args})
    assert asked.status_code == 200, asked.text
    funnel = asked.json()
    templates = project.root / "target" / "dbt_studio_cache" / "templates"
    kept = set(templates.iterdir()) if templates.is_dir() else set()
    job = post(client, "/api/build", {"name": "studio_hostile", "new": True}).json()
    done = studio.jobs.wait(studio.jobs.jobs[job["job"]])
    assert done.status == "succeeded", "\n".join(done.lines[-30:])
    assert set(templates.iterdir()) - kept  # the job's dbt kept the new model's templates for the next build
    log = client.get(f"/jobs/{job['job']}/log?format=json").json()
    assert log["status"] == "succeeded" and any("studio_hostile" in line for line in log["lines"])
    assert any(" OK created " in line for line in log["lines"]), log["lines"]
    assert not any("\x1b[" in line for line in log["lines"]), log["lines"]  # no terminal colour codes on a page
    assert "studio_hostile" in client.get(f"/jobs/{job['job']}").text
    assert count(project, "studio_hostile") == funnel["size"] > 0
    assert count(project, "studio_hostile", "split_group = 'holdout'") == funnel["splits"]["holdout"]
    manifest = json.loads((project.root / "target" / "manifest.json").read_text())
    node = manifest["nodes"]["model.plant_store.studio_hostile"]
    assert node["description"] == description
    assert yaml.safe_load((project.root / "models/audiences/studio_hostile.yml").read_text())["models"][0]["name"]
    assert "studio_hostile" in client.get("/audiences").text  # the new build is in the catalog


def test_a_sync_runs_from_the_studio_and_its_run_appears(example):
    project, studio, client = example
    r = post(client, "/syncs/retarget_to_files/plan")
    plan = studio.jobs.wait(studio.jobs.jobs[r.json()["job"]])
    assert plan.status == "succeeded" and any("retarget_to_files" in line for line in plan.lines), plan.lines
    r = post(client, "/syncs/retarget_to_files/run")
    run = studio.jobs.wait(studio.jobs.jobs[r.json()["job"]])
    assert run.status == "succeeded", run.lines
    details = client.get("/syncs/retarget_to_files/details").text
    assert details.count('class="run"') == 1 and "status-success" in details
    sent = count(project, "viewed_not_bought")
    values = re.search(r"data-values='([^']*)'", details)
    assert values and json.loads(html.unescape(values.group(1))) == [sent]
    htmx = client.post("/syncs/retarget_to_files/run", headers={"X-CSRF-Token": client.cookies.get("studio_csrf"),
                                                                 "HX-Request": "true"})
    assert htmx.status_code == 200 and 'class="job"' in htmx.text
    studio.jobs.wait(studio.jobs.running() or studio.jobs.jobs[max(studio.jobs.jobs)])


def test_secrets_are_never_rendered(example):
    project, studio, client = example
    pages = [client.get(u).text for u in ("/syncs", "/syncs/runs", "/audiences", "/audiences/sizes", "/schema",
                                          "/api/schema")]
    pages += [client.get(f"/jobs/{j}/log?format=json").text for j in studio.jobs.jobs]
    assert not any("s3cr3t-value-xyz" in p for p in pages)


def test_state_changes_need_the_csrf_token_and_local_requests(example):
    project, studio, client = example
    assert client.post("/api/save", json={"name": "x"}).status_code == 403
    assert client.post("/api/save", json={"name": "x"}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    other = TestClient(client.app)  # no CSRF cookie: a header alone is not enough
    assert other.post("/api/build", json={"name": "x"},
                      headers={"X-CSRF-Token": client.cookies.get("studio_csrf")}).status_code == 403
    cross = client.post("/api/build", json={"name": "x"}, headers={
        "X-CSRF-Token": client.cookies.get("studio_csrf"), "Origin": "http://evil.example"})
    assert cross.status_code == 403
    assert client.get("/audiences", headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
    assert client.get("/schema").headers["x-frame-options"] == "DENY"


def test_off_localhost_every_request_needs_the_token(example):
    project, studio, client = example
    guarded = settings(project.root, project.adapter, host="0.0.0.0", token="tok-123")
    app = build_app(guarded, studio)
    anon = TestClient(app)
    assert anon.get("/audiences").status_code == 401 and anon.get("/static/builder.js").status_code == 401
    assert anon.get("/audiences?token=nope").status_code == 401
    assert anon.get("/audiences?token=tok-123").status_code == 200  # and it becomes a cookie
    assert anon.get("/schema").status_code == 200
    bearer = TestClient(app)
    assert bearer.get("/schema", headers={"Authorization": "Bearer tok-123"}).status_code == 200



def test_values_with_the_file_held_elsewhere_and_an_audience_file_renamed_answer_one_line(example):
    """Two failures of the warehouse or the disk, not of the studio: a DuckDB file another process holds (503) and
    an audience file renamed since the last build (404) are one line of JSON, not a 500 and a traceback."""
    project, studio, client = example
    sql = project.root / "models" / "audiences" / "monthly_subscribers.sql"
    renamed = sql.with_name("monthly_subscribers_v2.sql")
    opened = client.get("/api/audience/monthly_subscribers").json()  # a page opened before the rename
    sql.rename(renamed)
    try:
        r = client.get("/api/audience/monthly_subscribers")
        assert r.status_code == 404 and r.json() == {
            "error": "monthly_subscribers: cannot read models/audiences/monthly_subscribers.sql (No such file or "
                     "directory); renamed or deleted since the last build? build the project again"}
        saved = post(client, "/api/save", {"name": "monthly_subscribers", "folder": opened["folder"],
                                           "arguments": opened["arguments"], "opened": "monthly_subscribers",
                                           "digest": opened["digest"], "as_of": opened["as_of"]})
        assert saved.status_code == 400 and saved.json() == {
            "error": "monthly_subscribers: its file is not where the last build found it (renamed or deleted?); "
                     "build the project again, then open it again"}
        assert not sql.exists()
    finally:
        renamed.rename(sql)
    assert client.get("/api/audience/monthly_subscribers").json()["editable"] is True
    if project.adapter != "duckdb":
        return  # only a DuckDB file is held by another process
    worker = studio.queries.worker
    previous = worker.release_after
    worker.release_after = 0.1
    database = project.root / "target" / "warehouse.duckdb"
    url = "/api/values?model=stg_users&column=user_id"
    try:
        client.get(url)  # the studio has the file open, then lets go of it when idle
        with duckdb_held(database) as holder:
            studio.queries.clear_cache()
            r = client.get(url)
            assert r.status_code == 503, r.text
            error = r.json()["error"]
            assert error.startswith(f"the warehouse is busy: another process (PID {holder.pid}, ") and "\n" not in error
            assert error.endswith("try again once it is done")
        values = client.get(url).json()["values"]
        assert len(values) == min(20, count(project, "stg_users", "user_id is not null"))
    finally:
        worker.release_after = previous


def test_split_sizes_on_the_audiences_page_are_counted_on_the_built_table(example):
    """The size and the split sizes of a row come from the same built table, not from the definition run again:
    with rows of the built table gone (built with other data or another as_of), both match it."""
    project, studio, client = example
    relation = project.relation("high_value_buyers")
    groups = studio.catalog.audience("high_value_buyers").spec["splits"]["groups"]
    # the test's own connection, as another process's would be: the studio holds none meanwhile (it lets go of an
    # idle DuckDB file at any moment, and with it dbt-duckdb's database in this process)
    with studio.queries.worker.released():
        project.execute(f"delete from {relation} where user_id in (select user_id from {relation} "
                        "order by user_id limit 7)")
        expected = [f"{g} {count(project, 'high_value_buyers', f'split_group = {chr(39)}{g}{chr(39)}'):,}"
                    for g in groups]
        size = count(project, "high_value_buyers")
    studio.queries.clear_cache()
    sizes = client.get("/audiences/sizes").text
    row = sizes[sizes.index('data-audience="high_value_buyers"'):]
    row = row[:row.index("</tr>")]
    assert f'<td class="num size">{size:,}</td>' in row
    assert re.findall(r'<span class="split">([^<]*)</span>', row) == expected


def test_a_split_group_given_twice_and_refused_renames_and_deletes_answer_400_and_change_nothing(example):
    """What the page refuses, the server refuses too, in one line naming the file and the key: a save whose split
    groups name one group twice (a rename onto another group's name: JSON keeps the last), a rename onto an
    existing name, a delete without its confirmation. An unknown audience is a 404. No file changes."""
    project, studio, client = example
    folder = project.root / "models" / "audiences"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    opened = client.get("/api/audience/high_value_buyers").json()
    body = {"name": "high_value_buyers", "folder": opened["folder"], "arguments": opened["arguments"],
            "opened": "high_value_buyers", "digest": opened["digest"], "as_of": opened["as_of"]}
    text = json.dumps(body).replace('{"email": 90, "holdout": 10}', '{"holdout": 90, "holdout": 10}')
    assert text != json.dumps(body)
    saved = client.post("/api/save", content=text, headers={"Content-Type": "application/json",
                                                            "X-CSRF-Token": client.cookies.get("studio_csrf")})
    assert saved.status_code == 400 and saved.json()["error"] == \
        "models/audiences/high_value_buyers.sql: splits: two groups named 'holdout'; rename one of them (nothing saved)"
    renamed = post(client, "/api/audience/high_value_buyers/rename", {"new_name": "viewed_not_bought"})
    assert renamed.status_code == 400 and renamed.json()["error"] == \
        "high_value_buyers: a model named 'viewed_not_bought' already exists in the project " \
        "(models/audiences/viewed_not_bought.sql); pick another name"
    assert post(client, "/api/audience/high_value_buyers/rename", {"new_name": "Bad Name"}).status_code == 400
    deleted = post(client, "/api/audience/high_value_buyers/delete", {})
    assert deleted.status_code == 400 and deleted.json()["error"] == \
        "high_value_buyers: deleting needs a confirmation; nothing deleted"
    for action in ("rename", "delete"):
        assert post(client, f"/api/audience/nope/{action}", {"new_name": "x", "confirm": True}).status_code == 404
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert "high_value_buyers" in {a["name"] for a in client.get("/api/schema").json()["audiences"]}
