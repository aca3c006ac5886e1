"""The studio in a real browser (Playwright driving Debian's Chromium) on the plant-store example (DuckDB):
build an audience by clicking, watch its funnel, save and build it, and find the member count the page showed
in the built model; open a hand-written audience holding every kind of condition, save it unchanged (no byte
changes), edit its event window and count, save and build it, and find the members a hand-written query finds;
open a sync, run it, and see the run appear; leave the page idle while another process takes the DuckDB file,
see the audiences page say it cannot read the sizes and why, then see them back once the file is free. The
screenshots in docs/studio/ come from here (taken on every run, written only with
DBT_STUDIO_SCREENSHOTS=docs/studio: a test run leaves the tree as it was). On Snowflake (fakesnow): open a built
audience, see its size, add a condition with a suggested value and see the new size.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync_runner.serve.studio.files import parse_audience

from helpers.held_file import duckdb_held
from helpers.studio_projects import CHECKS, DISABLED, served_studio

CHROMIUM = "/usr/bin/chromium"
WINDOW = 3650
SHOTS = os.environ.get("DBT_STUDIO_SCREENSHOTS")  # a folder to write the screenshots into
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")
# a hand-written audience with what the builder's first pass could not edit: `<>`, an event window `between`,
# `times` as a bare number, first/last of an event, a having list, a trait with `where` and `order_by`
EVERY_KIND = """{#- Every kind of condition, hand-written: the studio must open it, keep it and edit it. -#}
{{ dbt_studio.audience(
    parent='stg_users',
    where={'and': [
        {'column': 'geo_region', 'op': '<>', 'value': 'Northeast'},
        {'performed': 'stg_product_viewed', 'between': ['2000-01-01', '2100-01-01'], 'times': 1},
        {'or': [
            {'has': 'stg_purchases', 'having': [{'agg': 'count', 'op': '>=', 'value': 1},
                                                {'agg': 'sum', 'column': 'price', 'op': '>', 'value': 50}]},
            {'not': {'performed': 'stg_tracks', 'last': {'op': 'before', 'value': '2000-01-01'}}},
        ]},
    ]},
    traits=[{'name': 'last_product', 'related': 'stg_product_viewed', 'agg': 'last', 'column': 'product_id',
             'order_by': 'timestamp', 'where': {'column': 'product_id', 'op': 'is not null'}}],
) }}
"""


def add_managed_audiences(folder: Path) -> None:
    """Audiences the rename and delete test changes: rename_me (documented in its own rename_me.yml), delete_me
    (an entry of the shared _audiences.yml), and referred, which refers_to_it names in a condition."""
    small = "{{ dbt_studio.audience(parent='stg_users', where={'column': 'age', 'op': '>=', 'value': %d}) }}\n"
    for name, age in (("rename_me", 60), ("delete_me", 61), ("referred", 62)):
        (folder / f"{name}.sql").write_text(small % age, encoding="utf-8")
    (folder / "refers_to_it.sql").write_text(
        "{{ dbt_studio.audience(parent='stg_users', where={'not in audience': 'referred'}) }}\n", encoding="utf-8")
    (folder / "rename_me.yml").write_text("version: 2\nmodels:\n  - name: rename_me\n    description: Renamed in the "
                                          "browser test.\n", encoding="utf-8")
    shared = folder / "_audiences.yml"
    shared.write_text(shared.read_text(encoding="utf-8") + "  - name: delete_me\n    description: Deleted in the "
                      "browser test.\n", encoding="utf-8")


def every_kind_reference(project, start: str, times: int) -> int:
    """Members of EVERY_KIND with the window starting at `start` and `times` views, by a query written here."""
    r = project.relation
    return project.query(
        f"select count(*) from {r('stg_users')} u where u.geo_region <> 'Northeast' "
        f"and (select count(*) from {r('stg_product_viewed')} v where v.user_id = u.user_id "
        f"and v.timestamp >= '{start}' and v.timestamp < '2100-01-01') >= {times} "
        f"and (((select count(*) from {r('stg_purchases')} x where x.user_id = u.user_id) >= 1 "
        f"and (select sum(price) from {r('stg_purchases')} x where x.user_id = u.user_id) > 50) "
        f"or not coalesce((select max(timestamp) from {r('stg_tracks')} t where t.user_id = u.user_id) "
        "< '2000-01-01', false))")[0][0]


@pytest.fixture(scope="module")
def served(new_project):
    project = new_project("duckdb", name="studio_browser")
    (project.root / "models" / "audiences" / "every_kind.sql").write_text(EVERY_KIND, encoding="utf-8")
    add_managed_audiences(project.root / "models" / "audiences")
    project.dbt("build")
    # the reference counts, read before the studio holds the connection (a second adapter in this process would
    # take it away mid-request): members per region who viewed a product in the last WINDOW days
    rows = project.query(
        f"select u.geo_region, count(*) from {project.relation('stg_users')} u where exists ("
        f"select 1 from {project.relation('stg_product_viewed')} v where v.user_id = u.user_id "
        f"and v.timestamp >= current_timestamp - interval {WINDOW} day and v.timestamp <= current_timestamp) "
        "group by 1")
    project.expected = dict(rows)
    # the edit the every-kind test makes: the window from the median view on, and 2 views instead of 1
    project.median_view = str(project.query(
        f"select cast(median(timestamp) as date) from {project.relation('stg_product_viewed')}")[0][0])
    project.every_kind = (every_kind_reference(project, "2000-01-01", 1),
                          every_kind_reference(project, project.median_view, 2))
    # `last within last N days` of a product view: N the days since the median user's last view, and the members
    last_view = f"select user_id, max(timestamp) as last_at from {project.relation('stg_product_viewed')} group by 1"
    project.last_days = int(project.query(f"select date_diff('day', cast(median(last_at) as date), current_date) "
                                          f"from ({last_view}) l")[0][0])
    project.last_within = project.query(
        f"select count(*) from {project.relation('stg_users')} u join ({last_view}) l on l.user_id = u.user_id "
        f"where l.last_at >= current_timestamp - interval {project.last_days} day "
        "and l.last_at <= current_timestamp")[0][0]
    project.release()
    yield from ((project, studio, url) for studio, url in serve(project))


def serve(project):
    """The studio on `project` in a uvicorn thread; yields (studio, its URL)."""
    with served_studio(project.root, project.adapter) as (studio, url):
        yield studio, url


@pytest.fixture(scope="module")
def served_snowflake(new_project):
    project = new_project("snowflake", name="studio_browser_sf")
    project.dbt("build", "-s", "+high_value_buyers")
    r = project.relation
    project.size = count(project, "high_value_buyers")
    # the most frequent region (the first suggested value) and the members in it, by a query written here
    project.region = project.query(f"select geo_region, count(*) from {r('stg_users')} where geo_region is not null "
                                   "group by 1 order by 2 desc, 1 limit 1")[0][0]
    project.in_region = project.query(
        f"select count(*) from {r('high_value_buyers')} h join {r('stg_users')} u on u.user_id = h.user_id "
        f"where u.geo_region = '{project.region}'")[0][0]
    project.release()
    yield from ((project, url) for _, url in serve(project))


@pytest.fixture(scope="module")
def served_checks(new_project):
    """The studio on tests/projects/studio_checks (a disabled model, a many:1 whose "one" side repeats a key)."""
    project = new_project("duckdb", name="studio_browser_checks", source=CHECKS)
    project.dbt("build")
    project.release()
    yield from ((project, url) for _, url in serve(project))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == []


def shot(page, name: str) -> None:
    image = page.screenshot()
    assert image.startswith(b"\x89PNG"), name
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SHOTS) / f"{name}.png").write_bytes(image)


def count(project, name, where="1=1"):
    return project.query(f"select count(*) from {project.relation(name)} where {where}")[0][0]


def test_build_an_audience_by_clicking_save_build_and_find_its_members(served, page):
    project, studio, url = served
    page.goto(f"{url}/schema")
    page.wait_for_selector("table.columns[data-model='stg_users']")
    shot(page, "schema")

    page.goto(f"{url}/builder")
    page.wait_for_selector("#top-adders button[data-kind='column']")
    page.click("#top-adders button[data-kind='column']")
    row = page.locator("#conditions .cond").nth(0)
    row.locator("select.column").select_option("geo_region")
    # the suggested values of the column come as choices
    options = "datalist[id='values-stg_users-geo_region'] option"
    page.wait_for_function(f"document.querySelectorAll(\"{options}\").length > 0")
    suggested = page.eval_on_selector_all(options, "os => os.map(o => o.value)")
    assert "Northeast" in suggested
    row.locator("input.value").fill(suggested[0])

    page.click("#top-adders button[data-kind='performed']")
    performed = page.locator("#conditions .cond").nth(1)
    performed.locator("select.target").select_option("stg_product_viewed")
    performed = page.locator("#conditions .cond").nth(1)
    performed.locator("input.within-days").fill(str(WINDOW))
    page.click("button.add-splits")
    page.fill("#name", "browser_vips")
    page.fill("#description", "Built in the browser test: a region and a recent product view.")

    expected = project.expected[suggested[0]]
    assert expected > 0
    page.wait_for_function("document.querySelectorAll('#funnel .step').length === 2 && "
                           f"document.getElementById('total').dataset.size === '{expected}'", timeout=20000)
    assert page.locator("#split-sizes .split-size").count() == 2
    page.select_option("#breakdown-column", "age")
    page.wait_for_selector("#breakdown .breakdown-row")
    page.check("#overlap-choices input[value='high_value_buyers']")
    page.wait_for_selector("table.overlap")
    shot(page, "builder")

    page.click("#save")
    page.wait_for_selector("#save-status.saved")
    assert "models/audiences/browser_vips.sql" in page.inner_text("#save-status")
    page.click("#build")
    page.wait_for_selector(".job[data-status='succeeded']", timeout=90000)
    holdout = int(page.locator("#split-sizes .split-size .bar-num").nth(1).inner_text().split()[0].replace(",", ""))

    page.goto(f"{url}/audiences")
    page.wait_for_selector("tr[data-audience='browser_vips'] td.size")
    size = page.inner_text("tr[data-audience='browser_vips'] td.size")
    assert int(size.replace(",", "")) == expected
    page.wait_for_selector("tr[data-audience='viewed_not_bought'] .spark .uplot", state="attached")
    shot(page, "audiences")
    page.close()  # no request in flight: read the built model directly
    assert count(project, "browser_vips") == expected
    assert count(project, "browser_vips", "split_group = 'holdout'") == holdout


def test_every_kind_of_condition_opens_saves_unchanged_and_edits(served, page):
    project, studio, url = served
    path = project.root / "models" / "audiences" / "every_kind.sql"
    before, after = project.every_kind
    assert 0 < after < before  # the edit changes the members
    original = parse_audience(path).arguments
    page.goto(f"{url}/builder?audience=every_kind")
    page.wait_for_function("document.querySelectorAll('#funnel .step').length === 3 && "
                           f"document.getElementById('total').dataset.size === '{before}'", timeout=20000)
    # every part is shown for editing
    assert page.locator("#conditions .cond").nth(0).locator("select.op").input_value() == "<>"
    performed = page.locator("#conditions .cond").nth(1)
    assert performed.locator("input.between-start").input_value() == "2000-01-01"
    assert performed.locator("input.between-end").input_value() == "2100-01-01"
    assert performed.locator(".times input.cmp-value").input_value() == "1"
    assert page.locator("#conditions .having").count() == 2
    assert page.locator("#conditions .last input.cmp-value").input_value() == "2000-01-01"
    assert page.locator("#traits select.trait-order-by").input_value() == "timestamp"
    assert page.locator("#traits .trait-where select.op").input_value() == "is not null"

    page.click("#save")
    page.wait_for_selector("#save-status.saved")
    assert "no change" in page.inner_text("#save-status")
    assert path.read_text(encoding="utf-8") == EVERY_KIND

    performed.locator("input.between-start").fill(project.median_view)
    performed.locator(".times input.cmp-value").fill("2")
    page.wait_for_function(f"document.getElementById('total').dataset.size === '{after}'", timeout=20000)
    page.click("#save")
    page.wait_for_function("document.getElementById('save-status').textContent.startsWith('saved')")
    saved = parse_audience(path).arguments
    assert saved["where"]["and"][1] == {"performed": "stg_product_viewed", "between": [project.median_view,
                                        "2100-01-01"], "times": {"op": ">=", "value": 2}}
    assert saved["traits"] == original["traits"]
    assert [c for i, c in enumerate(saved["where"]["and"]) if i != 1] == \
        [c for i, c in enumerate(original["where"]["and"]) if i != 1]
    assert path.read_text(encoding="utf-8").startswith("{#- Every kind of condition")  # the comment stays
    page.click("#build")
    page.wait_for_selector(".job[data-status='succeeded']", timeout=90000)
    page.close()
    assert count(project, "every_kind") == after


def test_a_relative_last_window_is_a_number_and_a_new_audience_saves_again_without_asking(served, page):
    """`last within last N days` is sent as a number: the funnel's size is the members a hand-written query finds,
    and the file holds the number. Saved once, the new audience is this page's: a second save after an edit just
    saves (no "exists: confirm" dialog)."""
    project, studio, url = served
    days, expected = project.last_days, project.last_within
    assert expected > 0
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    folder = project.root / "models" / "audiences"
    try:
        page.goto(f"{url}/builder")
        page.wait_for_selector("#top-adders button[data-kind='performed']")
        page.click("#top-adders button[data-kind='performed']")
        page.locator("#conditions .cond").nth(0).locator("select.target").select_option("stg_product_viewed")
        page.locator("#conditions .cond").nth(0).locator("button.add-last").click()
        page.locator("#conditions .last select.cmp-op").select_option("within last days")
        page.locator("#conditions .last input.cmp-value").fill(str(days))
        page.wait_for_function(f"document.getElementById('total').dataset.size === '{expected}'", timeout=20000)
        assert page.inner_text("#funnel-error") == ""
        page.fill("#name", "browser_last_window")
        page.click("#save")
        page.wait_for_selector("#save-status.saved")
        saved = parse_audience(folder / "browser_last_window.sql").arguments
        assert saved["where"] == {"and": [{"performed": "stg_product_viewed",
                                           "last": {"op": "within last days", "value": days}}]}
        page.locator("#conditions .last input.cmp-value").fill(str(days + 30))
        page.evaluate("document.getElementById('save-status').textContent = ''")
        page.click("#save")
        page.wait_for_function("document.getElementById('save-status').textContent !== ''")
        assert page.inner_text("#save-status") == "saved models/audiences/browser_last_window.sql" and dialogs == []
        again = parse_audience(folder / "browser_last_window.sql").arguments
        assert again["where"]["and"][0]["last"] == {"op": "within last days", "value": days + 30}
    finally:
        for suffix in (".sql", ".yml"):
            (folder / f"browser_last_window{suffix}").unlink(missing_ok=True)


def test_open_a_sync_run_it_and_see_the_run(served, page):
    project, studio, url = served
    page.goto(f"{url}/syncs")
    page.click("a[href='/syncs/retarget_to_files']")
    page.wait_for_selector("#details table.runs")
    before = page.locator("#details tr.run").count()
    page.click("#sync-now")
    page.wait_for_selector("#job-area .job[data-status='succeeded']", timeout=60000)
    page.wait_for_function(f"document.querySelectorAll('#details tr.run').length === {before + 1}", timeout=20000)
    assert page.inner_text("#details tr.run td.status") == "success"
    page.wait_for_selector("#rows-chart .uplot", state="attached")
    shot(page, "sync")


def test_an_idle_page_lets_go_of_the_file_and_says_why_it_cannot_read_while_another_process_holds_it(served, page):
    """The studio open in a tab must not lock a `dbt build` out of the DuckDB file: once idle, another process
    takes the file; the audiences page then says "cannot read" and why on every row (not "not built"); once the
    file is free again the same page shows the sizes, equal to the built models'."""
    project, studio, url = served
    worker = studio.queries.worker
    previous = worker.release_after
    worker.release_after = 0.2
    database = project.root / "target" / "warehouse.duckdb"
    try:
        page.goto(f"{url}/audiences")
        page.wait_for_selector("tr[data-audience='viewed_not_bought'] td.size")
        rows = page.locator("tbody tr[data-audience]").count()
        shown = page.inner_text("tr[data-audience='viewed_not_bought'] td.size")
        with duckdb_held(database):
            studio.queries.clear_cache()
            page.reload()
            page.wait_for_selector("tr.unreadable-all")
            # the reason once, above the rows, in words a marketer can act on; each row says it cannot read
            reason = page.inner_text("tr.unreadable-all")
            assert reason.startswith("Cannot read the sizes: the warehouse is busy: another process (PID "), reason
            assert reason.endswith("has the DuckDB file open (a `dbt build`, a sync or another studio); try again "
                                   "once it is done"), reason
            sizes = page.locator("tbody tr[data-audience] td.size")
            assert [sizes.nth(i).inner_text() for i in range(rows)] == ["cannot read"] * rows
            assert page.locator("tbody tr[data-audience]", has_text="no recorded builds").count() == 0
            shot(page, "audiences-file-held")
        page.reload()
        page.wait_for_selector("tr[data-audience='viewed_not_bought'] td.size")
        assert page.locator("tr.unreadable-all, tbody tr[data-audience] td.size .error").count() == 0
        assert page.inner_text("tr[data-audience='viewed_not_bought'] td.size") == shown
    finally:
        worker.release_after = previous
    page.close()
    assert int(shown.replace(",", "")) == count(project, "viewed_not_bought")


def test_on_snowflake_an_audience_opens_with_its_size_and_a_condition_changes_it(served_snowflake, page):
    project, url = served_snowflake
    assert 0 < project.in_region < project.size
    page.goto(f"{url}/builder?audience=high_value_buyers")
    page.wait_for_function(f"document.getElementById('total').dataset.size === '{project.size}'", timeout=40000)
    page.click("#top-adders button[data-kind='column']")
    row = page.locator("#conditions .cond").nth(1)
    row.locator("select.column").select_option("geo_region")
    options = "datalist[id='values-stg_users-geo_region'] option"
    page.wait_for_function(f"document.querySelectorAll(\"{options}\").length > 0", timeout=40000)
    assert page.eval_on_selector_all(options, "os => os.map(o => o.value)")[0] == project.region
    row.locator("input.value").fill(project.region)
    page.wait_for_function("document.querySelectorAll('#funnel .step').length === 2 && "
                           f"document.getElementById('total').dataset.size === '{project.in_region}'", timeout=40000)


def test_a_split_group_renamed_onto_another_group_is_refused_next_to_the_field(served, page):
    """Renaming the `email` group of high_value_buyers to `holdout` would merge the two keys and drop a group: the
    page says so beside the field, the group keeps its name, and a save changes no byte of the file."""
    project, studio, url = served
    path = project.root / "models" / "audiences" / "high_value_buyers.sql"
    before = path.read_bytes()
    page.goto(f"{url}/builder?audience=high_value_buyers")
    page.wait_for_function("document.querySelectorAll('#split-sizes .split-size').length === 2", timeout=20000)
    first = page.locator("#splits .split-row").nth(0)
    assert first.locator("input.split-name").input_value() == "email"
    first.locator("input.split-name").fill("holdout")
    first.locator("input.split-name").dispatch_event("change")
    assert first.locator(".split-error").inner_text() == \
        '"holdout" is already a group: pick another name (the group is still "email")'
    assert first.locator("input.split-name").input_value() == "email"
    assert page.locator("#splits input.split-name").evaluate_all("xs => xs.map(x => x.value)") == ["email", "holdout"]
    page.click("#save")
    page.wait_for_selector("#save-status.saved")
    assert "no change" in page.inner_text("#save-status")
    assert path.read_bytes() == before


def test_a_funnel_label_shows_the_value_as_typed(served, page):
    """A condition's value with &, quotes, < and non-ASCII letters is shown in the funnel as typed: escaped once,
    by the page's text nodes, not as JSON or HTML escapes."""
    project, studio, url = served
    value = 'Tom & Jerry\'s "café" <b>'
    page.goto(f"{url}/builder")
    page.wait_for_selector("#top-adders button[data-kind='column']")
    page.click("#top-adders button[data-kind='column']")
    row = page.locator("#conditions .cond").nth(0)
    row.locator("select.column").select_option("geo_region")
    row.locator("input.value").fill(value)
    page.wait_for_function("document.querySelectorAll('#funnel .step').length === 1 && "
                           "document.getElementById('total').dataset.size === '0'", timeout=20000)
    assert page.inner_text("#funnel .step .bar-label") == f'1. geo_region = "{value}"'


def test_the_description_shown_is_the_file_s_as_it_is_now(served, page):
    """A description changed in the YAML file since the last build is the one the audiences page and the builder
    show (the manifest's is as of the build)."""
    project, studio, url = served
    path = project.root / "models" / "audiences" / "_audiences.yml"
    before = path.read_text(encoding="utf-8")
    old = "Visitors of the fiddle-leaf fig product page."
    new = "Changed on disk since the build, fig & co's visitors"
    assert old in before
    try:
        path.write_text(before.replace(old, new), encoding="utf-8")
        page.goto(f"{url}/audiences")
        page.wait_for_selector("tr[data-audience='fiddle_leaf_visitors'] td.size")
        assert page.inner_text("tr[data-audience='fiddle_leaf_visitors'] td .muted.small") == new
        page.goto(f"{url}/builder?audience=fiddle_leaf_visitors")
        page.wait_for_function("document.getElementById('description').value !== ''", timeout=20000)
        assert page.input_value("#description") == new
    finally:
        path.write_text(before, encoding="utf-8")


def test_the_favicon_is_served_and_the_nav_says_where_you_are(served, page):
    project, studio, url = served
    page.goto(f"{url}/builder?audience=high_value_buyers")
    assert page.inner_text("nav.top a.on") == "Audiences"
    icon = page.get_attribute("link[rel='icon']", "href")
    assert icon and page.request.get(url + icon).status == 200
    assert page.request.get(f"{url}/favicon.ico").status == 200
    page.goto(f"{url}/builder")
    assert page.inner_text("nav.top a.on") == "New audience"


def test_rename_and_delete_an_audience(served, page):
    """Rename an audience (refused onto an existing name, then done: the file and its own YAML file move), refuse
    to rename or delete one another audience refers to, and delete one (a dismissed confirmation deletes nothing;
    its entry leaves the shared YAML file, every other entry stays)."""
    project, studio, url = served
    folder = project.root / "models" / "audiences"
    dialogs: list[str] = []
    answers = [False, True, True]  # dismiss, then accept (the referred audience), accept (delete_me)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept() if answers.pop(0) else d.dismiss()))
    text = (folder / "rename_me.sql").read_text(encoding="utf-8")

    page.goto(f"{url}/builder?audience=rename_me")
    page.wait_for_selector("#manage:not([hidden])")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    page.fill("#new-name", "high_value_buyers")
    page.click("#rename")
    page.wait_for_selector("#manage-status.error")
    assert page.inner_text("#manage-status") == \
        "rename_me: a model named 'high_value_buyers' already exists in the project " \
        "(models/audiences/high_value_buyers.sql); pick another name"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    page.fill("#new-name", "renamed_in_browser")
    page.click("#rename")
    page.wait_for_selector("#manage-status.saved")
    assert page.inner_text("#manage-status").startswith("renamed to models/audiences/renamed_in_browser.sql")
    assert page.inner_text("#builder-title") == "renamed_in_browser"
    assert not (folder / "rename_me.sql").exists() and not (folder / "rename_me.yml").exists()
    assert (folder / "renamed_in_browser.sql").read_text(encoding="utf-8") == text
    assert "name: renamed_in_browser" in (folder / "renamed_in_browser.yml").read_text(encoding="utf-8")
    page.fill("#new-name", "rename_me")  # and back at once: the old name is free before any build
    page.click("#rename")
    page.wait_for_function("document.getElementById('manage-status').textContent"
                           ".startsWith('renamed to models/audiences/rename_me.sql')")
    assert page.inner_text("#builder-title") == "rename_me"
    assert (folder / "rename_me.sql").read_text(encoding="utf-8") == text
    assert not (folder / "renamed_in_browser.sql").exists() and (folder / "rename_me.yml").is_file()

    page.goto(f"{url}/builder?audience=referred")
    page.wait_for_selector("#manage:not([hidden])")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    page.fill("#new-name", "fine_name")
    page.click("#rename")
    page.wait_for_selector("#manage-status.error")
    refused = "referred: models/audiences/refers_to_it.sql refers to it; change that first"
    assert page.inner_text("#manage-status") == refused + " (nothing renamed)"
    page.click("#delete")  # dismissed
    page.wait_for_function("document.getElementById('manage-status').textContent === 'not deleted'")
    page.click("#delete")  # accepted, and refused by the server
    deleting = refused + " (nothing deleted)"
    page.wait_for_function(f"document.getElementById('manage-status').textContent === {deleting!r}")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    shared = (folder / "_audiences.yml").read_text(encoding="utf-8")
    page.goto(f"{url}/builder?audience=delete_me")
    page.wait_for_selector("#manage:not([hidden])")
    page.click("#delete")
    page.wait_for_url(f"{url}/audiences")
    page.wait_for_selector("tr[data-audience='viewed_not_bought'] td.size")
    assert page.locator("tr[data-audience='delete_me'], tr[data-audience='rename_me']").count() == 0
    assert not (folder / "delete_me.sql").exists()
    assert (folder / "_audiences.yml").read_text(encoding="utf-8") == \
        shared.replace("  - name: delete_me\n    description: Deleted in the browser test.\n", "")
    assert len(dialogs) == 3 and dialogs[-1].startswith("Delete delete_me?")


def test_a_disabled_model_opened_in_the_builder_is_said_disabled(served_checks, page):
    project, url = served_checks
    page.goto(f"{url}/builder?audience=retired")
    page.wait_for_function("document.getElementById('builder-note').textContent !== ''", timeout=20000)
    assert page.inner_text("#builder-note") == DISABLED


def test_a_breakdown_the_data_would_inflate_says_why_instead(served_checks, page):
    """regions repeats region 'N' though people declare many:1 to it: a breakdown by its merged column shows the
    one line naming the relationship, the model and the key, not counts with the people of 'N' twice."""
    project, url = served_checks
    page.goto(f"{url}/builder")
    page.wait_for_function("[...document.querySelectorAll('#breakdown-column option')]"
                           ".some(o => o.value === 'region__region_name')", timeout=20000)
    page.select_option("#breakdown-column", "region__region_name")
    page.wait_for_selector("#breakdown p.error")
    assert page.inner_text("#breakdown p.error") == (
        "dbt_studio: breakdown by 'region__region_name': model 'people': relationship 'region' is declared many:1, "
        "but 'regions' has 2 rows with region_code = 'N': the data contradicts the declared cardinality, so the "
        "breakdown would count rows of 'people' more than once; fix the cardinality or the data")
    assert page.locator("#breakdown .breakdown-row").count() == 0
