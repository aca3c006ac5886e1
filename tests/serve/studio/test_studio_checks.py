"""What the studio says of a project's mistakes, through its routes (Starlette's TestClient) on a small built
project (tests/projects/studio_checks, DuckDB): a model that exists but is disabled (`enabled: false`) is said to
be disabled, with how to enable it, wherever a name is taken; the same in a real browser is in
test_studio_browser.py."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from sync_runner.core.errors import UserError
from sync_runner.serve.studio.app import Studio, build_app

from helpers.studio_projects import CHECKS, DISABLED, settings


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
