"""Identity stitching against an independent union-find reference, on DuckDB and on Snowflake (fakesnow).

The test project (tests/projects/stitching) stitches one seed through two sources: ids a, b, c all trusted, and
ids a, d where only a is trusted. Each test writes the seed, builds, and compares the output partition, the
main_ids and the side tables with what plain Python computes from the same rows.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ADAPTERS
from helpers.sql_lint import unknown_functions

PROJECT = Path(__file__).resolve().parents[1] / "projects" / "stitching"
BASE = datetime(2025, 1, 1)
# The documented default screening (docs/identity.md), written out independently of the macro.
BLOCKLIST = {"", "null", "none", "nil", "undefined", "unknown", "nan", "n/a", "na", "-1", "0", "anonymous", "test",
             "test@test.com", "test@example.com"}
SOURCES = ((("a", 0), ("b", 1), ("c", 2)), (("a", 0), ("d", 3)))  # (id type, column index) per source
TRUSTED = ({"a", "b", "c"}, {"a"})

Row = tuple  # (id_a, id_b, id_c, id_d, ts) or (id_a, id_b, id_c, id_d, ts, loaded_at)


def screened(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip()
    if not v or v.lower() in BLOCKLIST or re.fullmatch(r"[0-]*", v) or re.fullmatch(r"\s*", v):
        return None
    return v


def reference(rows: list[Row], caps: dict[tuple[str, str], int] | None = None):
    """Union-find over screened ids: returns ({node: root}, {node: first_seen}); last_seen() gives the other end."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}
    first_seen: dict[tuple[str, str], datetime] = {}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    pairs = []
    for row in rows:
        for source, trusted in zip(SOURCES, TRUSTED, strict=True):
            ids = [(t, screened(row[i])) for t, i in source]
            ids = [(t, v) for t, v in ids if v is not None]
            for node in ids:
                parent.setdefault(node, node)
                first_seen[node] = min(first_seen.get(node, row[4]), row[4])
            for i in range(len(ids)):
                for j in range(i + 1, len(ids)):
                    if ids[i][0] in trusted or ids[j][0] in trusted:
                        pairs.append((ids[i], ids[j]))
    capped = set()
    for (ta, tb), cap in (caps or {}).items():
        linked: dict[tuple[str, str], set] = {}
        for x, y in pairs:
            for u, w in ((x, y), (y, x)):
                if u[0] == ta and w[0] == tb:
                    linked.setdefault(u, set()).add(w)
        capped |= {(u, tb) for u, ws in linked.items() if len(ws) > cap}
    for x, y in pairs:
        if (x, y[0]) in capped or (y, x[0]) in capped:
            continue
        parent[find(x)] = find(y)
    return {n: find(n) for n in parent}, first_seen


def last_seen(rows: list[Row]) -> dict[tuple[str, str], datetime]:
    seen: dict[tuple[str, str], datetime] = {}
    for row in rows:
        for source in SOURCES:
            for t, i in source:
                v = screened(row[i])
                if v is not None:
                    seen[(t, v)] = max(seen.get((t, v), row[4]), row[4])
    return seen


def partition(assignment: dict) -> set[frozenset]:
    groups: dict = {}
    for node, label in assignment.items():
        groups.setdefault(label, set()).add(node)
    return {frozenset(g) for g in groups.values()}


def minted(node: tuple[str, str]) -> str:
    return hashlib.md5(f"{node[0]}:{node[1]}".encode()).hexdigest()


def write_rows(project, rows: list[Row]) -> None:
    with (project.root / "seeds" / "stitch_rows.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id_a", "id_b", "id_c", "id_d", "ts", "loaded_at"])
        for row in rows:
            loaded = row[5].strftime("%Y-%m-%d %H:%M:%S") if len(row) > 5 and row[5] is not None else ""
            out.writerow([("" if v is None else v) for v in row[:4]] + [row[4].strftime("%Y-%m-%d %H:%M:%S"), loaded])


def output(project) -> dict[tuple[str, str], tuple[str, datetime]]:
    rows = project.query(f"select id_type, id_value, main_id, first_seen_at from {project.relation('stitched')}")
    return {(t, v): (m, f) for t, v, m, f in rows}


def seen_at(project) -> dict[tuple[str, str], tuple[datetime, datetime]]:
    rows = project.query(
        f"select id_type, id_value, first_seen_at, last_seen_at from {project.relation('stitched')}")
    return {(t, v): (f, last) for t, v, f, last in rows}


def assert_equals_reference(project, rows: list[Row]) -> None:
    """The output's partition and first/last seen are those of a union-find over every row."""
    out = output(project)
    expected, first_seen = reference(rows)
    assert set(out) == set(expected)
    assert partition({n: m for n, (m, _) in out.items()}) == partition(expected)
    last = last_seen(rows)
    assert seen_at(project) == {n: (first_seen[n], last[n]) for n in expected}


def build(project, rows: list[Row], *args: str, check: bool = True, vars: dict | None = None):
    write_rows(project, rows)
    return project.dbt("build", *args, check=check, vars=vars)


@pytest.fixture(scope="module", params=ADAPTERS)
def stitching(request, new_project):
    return new_project(request.param, name="stitching", source=PROJECT)


# -- graphs -------------------------------------------------------------------------------------------------------

@st.composite
def graphs(draw, max_chain: int = 60) -> list[Row]:
    """Chains (also with ids and times increasing along them), trees, even cycles, singletons, duplicate rows,
    null ids, junk hubs and untrusted d ids, as disjoint components (names are unique per component)."""
    rows: list[Row] = []
    clock = iter(range(10**6))

    def ts(minutes: int | None = None) -> datetime:
        return BASE + timedelta(minutes=next(clock) if minutes is None else minutes)

    def row(a=None, b=None, c=None, d=None, at=None) -> Row:
        return (a, b, c, d, at or ts())

    for k in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["chain", "monotone", "tree", "cycle", "singletons"]))
        size = draw(st.integers(1, max_chain))
        name = f"k{k}n"
        if kind in ("chain", "monotone", "cycle"):
            length = size + (size % 2) if kind == "cycle" else size  # even cycles alternate a/b
            order = list(range(length)) if kind == "monotone" else draw(st.permutations(range(length)))
            node = [f"{name}{i:04d}" for i in range(length)]
            for step, i in enumerate(order[:-1] if kind != "cycle" else order):
                j = (i + 1) % length
                if kind != "cycle" and j == 0:
                    continue
                a, b = (node[i], node[j]) if i % 2 == 0 else (node[j], node[i])
                rows.append(row(a=a, b=b, at=ts(step) if kind == "monotone" else None))
        elif kind == "tree":
            types = ("a", "b", "c")
            depth = {0: 0}
            for i in range(1, size + 1):
                p = draw(st.integers(0, i - 1))
                depth[i] = depth[p] + 1
                ids = {types[depth[i] % 3]: f"{name}{i:04d}", types[depth[p] % 3]: f"{name}{p:04d}"}
                rows.append(row(**ids))
        else:
            for i in range(size):
                rows.append(row(c=f"{name}{i:04d}"))
        if draw(st.booleans()) and rows:  # a junk hub on a sample of this component's rows
            junk = draw(st.sampled_from(["unknown", "null", "0000", " ", "-1", "NaN", "Test@Example.com"]))
            for r in draw(st.lists(st.sampled_from(rows), max_size=8)):
                rows.append((r[0], r[1], junk, r[3], ts()))
        if draw(st.booleans()) and rows:  # untrusted d ids: linked through a only
            for r in draw(st.lists(st.sampled_from(rows), max_size=4)):
                rows.append((r[0], r[1], None, f"{name}d{len(rows)}", ts()))
    if draw(st.booleans()) and rows:  # duplicate rows and an all-null row
        rows += draw(st.lists(st.sampled_from(rows), max_size=10))
        rows.append(row())
    return rows


# -- tests --------------------------------------------------------------------------------------------------------

@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=graphs())
def test_partition_equals_union_find(stitching, rows):
    build(stitching, rows, "--full-refresh")
    out = output(stitching)
    expected, first_seen = reference(rows)
    assert set(out) == set(expected)
    assert partition({n: m for n, (m, _) in out.items()}) == partition(expected)
    # each cluster is named after its earliest-seen identifier (ties: type, then value)
    for cluster in partition(expected):
        earliest = min(cluster, key=lambda n: (first_seen[n], n[0], n[1]))
        assert {out[n][0] for n in cluster} == {minted(earliest)}


def test_long_monotone_chains_converge_in_few_rounds(stitching):
    """Ids and first-seen times increase along each chain: the worst case for min-label propagation."""
    rows = []
    for chain, length in enumerate((50, 500)):
        node = [f"m{chain}x{i:04d}" for i in range(length)]
        for i in range(length - 1):
            a, b = (node[i], node[i + 1]) if i % 2 == 0 else (node[i + 1], node[i])
            rows.append((a, b, None, None, BASE + timedelta(minutes=i)))
    stitching.messages.clear()
    build(stitching, rows, "--full-refresh")
    assert partition({n: m for n, (m, _) in output(stitching).items()}) == partition(reference(rows)[0])
    [rounds] = [int(m.split(" in ")[1].split()[0]) for m in stitching.messages if "converged in" in m]
    assert rounds <= 12


def small_components(count: int, seed: int) -> list[Row]:
    """`count` disjoint components of 1-9 ids each: a random tree (stars, with their centre anywhere in the
    numbering, paths, two ids, one id) plus, on a third of them, extra links (triangles, cycles, stars with a link
    between two leaves). Linked ids always differ in type, as they do in a source row."""
    rng = random.Random(seed)
    rows: list[Row] = []
    clock = iter(range(10**6))
    for k in range(count):
        size = rng.randint(1, 9)
        kinds = [rng.choice("abc") for _ in range(size)]
        links = []
        for i in range(1, size):
            parent = rng.choice([p for p in range(i) if kinds[p] != kinds[i]] or [rng.randrange(i)])
            if kinds[parent] == kinds[i]:
                kinds[i] = next(t for t in "abc" if t != kinds[parent])
            links.append((parent, i))
        if rng.random() < 1 / 3:
            links += [(i, j) for i in range(size) for j in range(i + 1, size)
                      if kinds[i] != kinds[j] and rng.random() < 0.3]
        ids = [f"s{k}n{i}" for i in range(size)]
        at = BASE + timedelta(minutes=next(clock))
        if size == 1:
            rows.append(tuple(ids[0] if t == kinds[0] else None for t in "abc") + (None, at))
        for i, j in links:
            rows.append(tuple(ids[i] if t == kinds[i] else ids[j] if t == kinds[j] else None for t in "abc")
                        + (None, BASE + timedelta(minutes=next(clock))))
    return rows


def test_many_small_components_in_one_build_equal_union_find(stitching):
    """What the first round of connected components finishes (stars, whatever their centre's number) and what it
    must not (a star with one more link), hundreds at once, as a real graph is mostly small people."""
    rows = small_components(400, seed=17)
    build(stitching, rows, "--full-refresh")
    assert_equals_reference(stitching, rows)


def test_round_cap_raises_and_names_the_model(stitching):
    rows = [(f"q{i:04d}" if i % 2 == 0 else f"q{i + 1:04d}", f"q{i + 1:04d}" if i % 2 == 0 else f"q{i:04d}",
             None, None, BASE + timedelta(minutes=i)) for i in range(200)]
    result = build(stitching, rows, "--full-refresh", "-s", "stitch_rows", "stitched", check=False,
                   vars={"dbt_studio_stitch_max_rounds": 1})
    assert not result.success
    messages = " ".join(str(r.message) for r in result.result.results)
    assert "model 'stitched' did not converge in 1 rounds" in messages


@pytest.mark.parametrize("cap", ["lots", 0])
def test_a_round_cap_that_is_not_a_count_of_rounds_names_the_var(stitching, cap):
    """'lots' was read as 0 rounds: "did not converge in 0 rounds" sent the user to raise a cap they had set."""
    result = stitching.dbt("run", "-s", "stitched", check=False, vars={"dbt_studio_stitch_max_rounds": cap})
    messages = " ".join(str(r.message) for r in result.result.results)
    assert not result.success
    assert (f"id_stitcher model 'stitched': max_rounds (meta.dbt_studio, else var dbt_studio_stitch_max_rounds) "
            f"is '{cap}', not a whole number of rounds of 1 or more") in messages, messages


def test_round_cap_counts_the_round_that_finishes(stitching):
    """A graph that needs exactly k rounds builds under max_rounds = k and fails under k - 1: the last round's
    own check of the edges it leaves decides, not one more round's."""
    rows = [(f"k{i:04d}" if i % 2 == 0 else f"k{i + 1:04d}", f"k{i + 1:04d}" if i % 2 == 0 else f"k{i:04d}",
             None, None, BASE + timedelta(minutes=i)) for i in range(120)]
    stitching.messages.clear()
    build(stitching, rows, "--full-refresh", "-s", "stitch_rows", "stitched")
    [rounds] = [int(m.split(" in ")[1].split()[0]) for m in stitching.messages if "converged in" in m]
    assert rounds >= 2
    build(stitching, rows, "--full-refresh", "-s", "stitch_rows", "stitched",
          vars={"dbt_studio_stitch_max_rounds": rounds})
    assert_equals_reference(stitching, rows)
    result = build(stitching, rows, "--full-refresh", "-s", "stitch_rows", "stitched", check=False,
                   vars={"dbt_studio_stitch_max_rounds": rounds - 1})
    assert not result.success
    assert f"did not converge in {rounds - 1} rounds" in " ".join(str(r.message) for r in result.result.results)


WORK_TABLE = re.compile(r'create or replace (?:temporary|transient) table ([^\s(]+)', re.I)
DROPPED = re.compile(r'drop table (?:if exists )?([^\s;]+)', re.I)


def test_work_tables_are_dropped_by_full_and_incremental_runs(stitching):
    """Every work table a run creates is dropped before it ends (DuckDB keeps its connection open between dbt
    invocations in one process, as `dbt-studio serve` does; Snowflake would keep them in the schema)."""
    rows = small_components(30, seed=5)

    def names(pattern: re.Pattern) -> set[str]:
        return {m.group(1).replace('"', "").lower() for sql in stitching.sql_log for m in pattern.finditer(sql)}

    for some, args in ((rows[: len(rows) // 2], ("--full-refresh",)), (rows, ())):  # the second adds people
        stitching.sql_log.clear()
        build(stitching, some, *args, "-s", "stitch_rows", "stitched")
        created = names(WORK_TABLE)
        assert {"stitched__stitch_obs", "stitched__stitch_edges_w"} <= {n.split(".")[-1] for n in created}
        assert created <= names(DROPPED), created - names(DROPPED)
    if stitching.adapter == "snowflake":
        tables = stitching.query("select table_name from information_schema.tables")
        assert [t for (t,) in tables if "__stitch_" in t.lower()] == []


def test_incremental_run_equals_full_rebuild_and_keeps_untouched_ids(stitching):
    early = [
        ("x1", "y1", None, None, BASE),                          # cluster X
        ("x2", "y2", None, None, BASE + timedelta(hours=1)),     # cluster Z (seen later than X)
        ("x3", None, "z3", None, BASE + timedelta(hours=2)),     # cluster W: never touched again
        ("x4", "y4", None, None, BASE + timedelta(hours=3)),     # cluster V: gains an id, no merge
    ]
    late = [
        ("x9", "y2", "z1", None, BASE + timedelta(days=5)),      # z1 is new...
        ("x1", None, "z1", None, BASE + timedelta(days=5, hours=1)),  # ...and links X and Z: X (earlier) survives
        ("x4", None, "z4", None, BASE + timedelta(days=6)),
    ]
    build(stitching, early, "--full-refresh")
    before = output(stitching)
    build(stitching, early + late)
    after = output(stitching)
    full, first_seen = reference(early + late)
    assert partition({n: m for n, (m, _) in after.items()}) == partition(full)

    x_id, z_id = before[("a", "x1")][0], before[("a", "x2")][0]
    assert x_id != z_id
    assert after[("a", "x2")][0] == after[("b", "y2")][0] == after[("a", "x9")][0] == x_id  # the earliest survives
    assert after[("a", "x3")][0] == before[("a", "x3")][0]                                  # untouched
    assert after[("c", "z4")][0] == after[("a", "x4")][0] == before[("a", "x4")][0]         # grew, same id
    changes = stitching.query(
        f"select old_main_id, new_main_id, reason from {stitching.relation('stitched', '__id_changes')}")
    assert changes == [(z_id, x_id, "merge")]

    # and a full rebuild gives the same partition (ids may be minted afresh)
    build(stitching, early + late, "--full-refresh")
    assert partition({n: m for n, (m, _) in output(stitching).items()}) == partition(full)


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=graphs(max_chain=30), data=st.data())
def test_incremental_after_late_rows_equals_full_rebuild(stitching, rows, data):
    """Rows loaded after a run, many with timestamps before it (backfills, offline devices, a new source), are
    read by the next incremental run: its output equals a union-find over every row, first/last seen included."""
    late_share = data.draw(st.sampled_from([0.1, 0.5]))
    loaded_later = set(data.draw(st.lists(st.integers(0, max(len(rows) - 1, 0)), max_size=int(len(rows) * late_share)
                                          + 1)))
    first = [r for i, r in enumerate(rows) if i not in loaded_later]
    newest = max((r[4] for r in first), default=BASE)
    later = []
    for i, r in enumerate(rows):
        if i in loaded_later:  # some keep their time, others are backdated well before the first run's newest row
            back = data.draw(st.sampled_from([None, timedelta(days=3), timedelta(days=400)]))
            later.append(r if back is None else (*r[:4], min(r[4], newest) - back))
    build(stitching, first, "--full-refresh")
    build(stitching, first + later)
    assert_equals_reference(stitching, first + later)


def test_late_rows_are_read_unless_a_lookback_is_opted_into(stitching):
    """A row backdated by days links two existing clusters and adds an id: the default run reads it; with the
    opt-in lookback of 24 hours (for load-ordered sources) it is skipped, as documented."""
    early = [("p1", "q1", None, None, BASE + timedelta(days=10)),
             ("p2", "q2", None, None, BASE + timedelta(days=10, hours=1))]
    late = [("p1", "q2", "r9", None, BASE + timedelta(days=2)),   # links both clusters, adds r9, moves first seen
            ("p2", None, None, None, BASE + timedelta(days=1))]   # only moves p2's first seen
    build(stitching, early, "--full-refresh")
    build(stitching, early + late, vars={"dbt_studio_stitch_lookback_hours": 24})
    out = output(stitching)
    assert ("c", "r9") not in out and out[("a", "p1")][0] != out[("a", "p2")][0]
    log = f"select old_main_id, new_main_id from {stitching.relation('stitched', '__id_changes')}"
    logged = stitching.query(log)
    build(stitching, early + late)
    assert_equals_reference(stitching, early + late)
    # one merge, logged: the cluster first seen later before this run (p2) joined p1's, whose main_id survives
    assert {m for m, _ in output(stitching).values()} == {out[("a", "p1")][0]}
    assert stitching.query(log)[len(logged):] == [(out[("a", "p2")][0], out[("a", "p1")][0])]
    if stitching.adapter == "snowflake":  # the incremental statements (MERGE included) are Snowflake SQL
        assert any(sql.lstrip().lower().startswith("merge") for sql in stitching.sql_log)
        assert unknown_functions(stitching.sql_log) == []


def rejection_counts(rows: list[Row]) -> dict[tuple[str, str, str], int]:
    """How often each (id type, raw value, source) is dropped by screening, counting every row once."""
    counts: dict[tuple[str, str, str], int] = {}
    for row in rows:
        for source, name in zip(SOURCES, ("stitch_rows", "untrusted"), strict=True):
            for t, i in source:
                if row[i] is not None and screened(row[i]) is None:
                    counts[(t, row[i], name)] = counts.get((t, row[i], name), 0) + 1
    return counts


def logged_rejections(project) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for t, v, source, n in project.query(f"select id_type, raw_value, source_name, occurrences "
                                         f"from {project.relation('stitched', '__rejected_ids')}"):
        counts[(t, v, source)] = counts.get((t, v, source), 0) + n
    return counts


def test_sources_with_a_load_time_are_read_from_their_watermark(stitching):
    """With `loaded_at`, an incremental run reads only the rows loaded after the newest one the last run read, and
    rows without a load time: late rows with old timestamps are read like any other, an old row edited in place
    is not (until the load-time expression changes or a full refresh), and the rejection log counts each row once."""
    loaded, later_load = BASE + timedelta(days=30), BASE + timedelta(days=31)
    first = [("p1", "q1", None, None, BASE + timedelta(days=1), loaded),
             ("p2", "q2", "unknown", None, BASE + timedelta(days=2), loaded),
             ("p3", None, None, None, BASE + timedelta(days=3), loaded)]
    later = [("p1", "q2", "r9", None, BASE, later_load),                     # merges p1 and p2, backdated
             ("p4", None, "undefined", "d4", BASE + timedelta(days=5), None)]  # no load time: read anyway
    on = {"loaded_at": "loaded_at"}

    build(stitching, first, "--full-refresh", vars=on)
    watermarks = f"select source_name, loaded_at from {stitching.relation('stitched', '__watermarks')}"
    assert sorted(stitching.query(watermarks)) == [("stitch_rows", loaded), ("untrusted", loaded)]
    build(stitching, first + later, vars=on)
    assert_equals_reference(stitching, first + later)
    assert sorted(stitching.query(watermarks)) == [("stitch_rows", later_load), ("untrusted", later_load)]
    assert logged_rejections(stitching) == rejection_counts(first + later)

    edited = first[:2] + [("p3", "q3", None, None, BASE + timedelta(days=3), loaded)] + later
    build(stitching, edited, vars=on)
    assert ("b", "q3") not in output(stitching)                      # loaded before the watermark: not read
    assert_equals_reference(stitching, first + later)
    assert logged_rejections(stitching) == rejection_counts(first + later)

    build(stitching, edited, vars={"loaded_at": "cast(loaded_at as timestamp)"})  # another expression: read in full
    assert_equals_reference(stitching, edited)
    assert logged_rejections(stitching) == rejection_counts(edited)
    build(stitching, edited, "--full-refresh", vars=on)
    assert_equals_reference(stitching, edited)
    assert logged_rejections(stitching) == rejection_counts(edited)


def test_screening_and_caps_are_recorded_with_reasons(stitching):
    rows = [
        ("hub", "u1", None, None, BASE),
        ("hub", "u2", None, None, BASE + timedelta(minutes=1)),
        ("hub", "u3", None, None, BASE + timedelta(minutes=2)),
        ("anon", "u1", "unknown", None, BASE + timedelta(minutes=3)),
        ("anon2", "u4", "Jane@Example.org", None, BASE + timedelta(minutes=4)),
        ("anon3", "u5", "jane@example.org ", None, BASE + timedelta(minutes=5)),
    ]
    id_types = {"a": {"max_edges": {"b": 2}}, "c": {"normalize": "lower(trim({{ value }}))",
                                                   "exclude_regex": ["^bot-"]}}
    build(stitching, rows + [("anon4", None, "bot-17", None, BASE)], "--full-refresh", vars={"id_types": id_types})
    out = output(stitching)
    # the reference sees c normalised (lower, trim) and bot-17 excluded
    normalised = [r if r[2] is None else (r[0], r[1], r[2].strip().lower(), r[3], r[4]) for r in rows]
    expected, _ = reference(normalised + [("anon4", None, None, None, BASE)], {("a", "b"): 2})
    assert partition({n: m for n, (m, _) in out.items()}) == partition(expected)
    assert out[("a", "anon2")][0] == out[("a", "anon3")][0]  # two spellings of one email link them
    assert out[("a", "hub")][0] not in {out[("b", u)][0] for u in ("u1", "u2", "u3")}
    rejected = stitching.query(
        f"select id_type, raw_value, reason, occurrences from {stitching.relation('stitched', '__rejected_ids')}")
    reasons = {(t, v, r) for t, v, r, _ in rejected}
    assert ("c", "unknown", "blocklist") in reasons
    assert ("c", "bot-17", "exclude_regex: ^bot-") in reasons
    assert ("a", "hub", "max_edges: linked to 3 b values (cap 2)") in reasons


def capped_partition(rows: list[Row], caps: dict[tuple[str, str], int]) -> set[frozenset]:
    return partition(reference(rows, caps)[0])


def out_partition(project) -> set[frozenset]:
    return partition({n: m for n, (m, _) in output(project).items()})


def test_a_cap_reached_over_several_runs_splits_what_it_merged(stitching):
    """A shared device links one more user each run: under its cap its links merge people; the run that takes it
    over the cap rebuilds from all rows, so the output equals a full build's (no one stays merged through it)."""
    caps = {"a": {"max_edges": {"b": 2}}}
    rows = [("hub", "u1", None, None, BASE), ("hub", "u2", None, None, BASE + timedelta(minutes=1))]
    build(stitching, rows, "--full-refresh", vars={"id_types": caps})
    assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})  # hub, u1 and u2 together
    stitching.messages.clear()
    rows.append(("hub", "u3", None, None, BASE + timedelta(minutes=2)))
    build(stitching, rows, vars={"id_types": caps})
    assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})  # each alone
    assert any("a max_edges cap was newly reached: a 'hub' is linked to 3 b values (cap 2); rebuilding the id "
               "graph from all rows" in m for m in stitching.messages), stitching.messages

    # the next run knows the device was capped before: it stays incremental
    stitching.messages.clear()
    rows.append(("hub", "u4", "c4", None, BASE + timedelta(minutes=3)))
    build(stitching, rows, vars={"id_types": caps})
    assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})
    assert not any("rebuilding" in m for m in stitching.messages)

    # every row is read, so no history of links is kept
    assert stitching.query("select count(*) from information_schema.tables "
                           "where lower(table_name) = 'stitched__cap_links'") == [(0,)]


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(links=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 2)), min_size=4, max_size=24))
def test_runs_under_caps_equal_a_full_build_after_each_run(stitching, links):
    """Devices (a) link users (b) over three runs that read every row, with users sometimes sharing an email (c):
    after each run the output's partition is the union-find's over every row so far, under a cap of 2 users."""
    caps = {"a": {"max_edges": {"b": 2}}}
    rows: list[Row] = [("dev0", None, None, None, BASE)]
    for run in range(3):
        rows += [(f"dev{d}", f"user{u}", f"mail{u // 2}" if u % 3 == 0 else None, None,
                  BASE + timedelta(minutes=len(rows) + i)) for i, (d, u, r) in enumerate(links) if r == run]
        build(stitching, rows, *(["--full-refresh"] if run == 0 else []), vars={"id_types": caps})
        assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})


def test_a_cap_reached_over_runs_read_from_watermarks_stops_and_asks_for_a_full_refresh(stitching):
    """With `loaded_at` each run reads only new rows, so the cap counts the links kept from earlier runs too; the run
    that takes a device over its cap cannot split what its links merged: it writes nothing and names the fix."""
    caps, on = {"a": {"max_edges": {"b": 2}}}, {"loaded_at": "loaded_at"}
    load = [BASE + timedelta(days=30 + i) for i in range(4)]
    rows = [("hub", "u1", None, None, BASE, load[0])]
    build(stitching, rows, "--full-refresh", vars={"id_types": caps, **on})
    rows.append(("hub", "u2", None, None, BASE + timedelta(hours=1), load[1]))
    build(stitching, rows, vars={"id_types": caps, **on})
    assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})  # hub, u1, u2: under the cap
    before = output(stitching)
    watermarks = f"select source_name, loaded_at from {stitching.relation('stitched', '__watermarks')}"
    marks = sorted(stitching.query(watermarks))

    rows.append(("hub", "u3", None, None, BASE + timedelta(hours=2), load[2]))  # one link in this run's rows
    result = build(stitching, rows, check=False, vars={"id_types": caps, **on})
    assert not result.success
    messages = " ".join(str(r.message) for r in result.result.results)
    assert ("id_stitcher model 'stitched': a max_edges cap was newly reached: a 'hub' is linked to 3 b values "
            "(cap 2). Links made before the cap was reached merged people a full build keeps apart") in messages
    assert "run dbt build -s stitched --full-refresh (nothing was written)" in messages
    assert output(stitching) == before and sorted(stitching.query(watermarks)) == marks

    build(stitching, rows, "--full-refresh", vars={"id_types": caps, **on})
    assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})
    # an identifier over its cap in the rows of one run merged no one before: the run goes on
    rows += [("hub2", f"v{i}", None, None, BASE + timedelta(hours=3), load[3]) for i in range(3)]
    build(stitching, rows, vars={"id_types": caps, **on})
    assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})
    history = f"select id_value, other_value from {stitching.relation('stitched', '__cap_links')}"
    assert sorted(stitching.query(history)) == sorted([("hub", f"u{i}") for i in (1, 2, 3)]
                                                      + [("hub2", f"v{i}") for i in range(3)])

    # a graph built before the history was kept (or caps added to a built one): caps count links from then on
    stitching.query(f"drop table {stitching.relation('stitched', '__cap_links')}")
    stitching.messages.clear()
    rows.append(("p9", "q9", None, None, BASE + timedelta(hours=4), load[3] + timedelta(days=1)))
    build(stitching, rows, vars={"id_types": caps, **on})
    assert out_partition(stitching) == capped_partition(rows, {("a", "b"): 2})
    assert any("max_edges caps count the links read from this run on; run dbt build -s stitched --full-refresh "
               "once" in m for m in stitching.messages), stitching.messages
    assert stitching.query(history) == [("p9", "q9")]


def test_a_change_of_the_screening_rules_rebuilds_the_graph_from_all_rows(stitching):
    """A junk value links two people until it is blocklisted: the next run, without --full-refresh, finds the rules
    changed since the graph was built and rebuilds it from all rows, so the two part, as a full build would (an
    incremental run never splits a cluster). Under unchanged rules a run stays incremental. A graph read from
    watermarks (`loaded_at`) reads every row for it, new rows or not."""
    junk = {"c": {"blocklist": ["shared-junk"]}}
    rows = [("p1", "q1", "shared-junk", None, BASE), ("p2", "q2", "shared-junk", None, BASE + timedelta(minutes=1))]
    parted = [(a, b, None, d, ts) for a, b, _, d, ts in rows]
    build(stitching, rows, "--full-refresh", vars={"id_types": {}})
    assert out_partition(stitching) == partition(reference(rows)[0])  # one person through the junk value
    rules = f"select rules from {stitching.relation('stitched', '__screening_rules')}"
    built_under = stitching.query(rules)

    stitching.messages.clear()
    build(stitching, rows, vars={"id_types": junk})
    assert out_partition(stitching) == partition(reference(parted)[0])  # two people
    assert any("stitched: the screening rules changed since the id graph was built" in m
               and "rebuilding it from all rows" in m for m in stitching.messages), stitching.messages
    assert len(stitching.query(rules)) == 1 and stitching.query(rules) != built_under

    stitching.messages.clear()
    rows.append(("p3", "q3", None, None, BASE + timedelta(minutes=2)))
    parted.append(rows[-1])
    build(stitching, rows, vars={"id_types": junk})
    assert out_partition(stitching) == partition(reference(parted)[0])
    assert not any("rebuilding" in m for m in stitching.messages), stitching.messages

    # a graph built before the rules were recorded: taken as built under the rules it meets, which are recorded
    under_junk = stitching.query(rules)
    stitching.query(f"drop table {stitching.relation('stitched', '__screening_rules')}")
    build(stitching, rows, vars={"id_types": junk})
    assert not any("rebuilding" in m for m in stitching.messages), stitching.messages
    assert stitching.query(rules) == under_junk

    on = {"loaded_at": "loaded_at"}
    loaded = [(*row, BASE + timedelta(days=30)) for row in rows]
    build(stitching, loaded, "--full-refresh", vars={"id_types": {}, **on})
    assert out_partition(stitching) == partition(reference(rows)[0])
    stitching.messages.clear()
    build(stitching, loaded, vars={"id_types": junk, **on})  # no row loaded since: every row read for the rules
    assert out_partition(stitching) == partition(reference(parted)[0])
    assert not any("read from loaded_at >" in m for m in stitching.messages), stitching.messages


def test_cluster_size_data_test_warns_then_errors(stitching):
    """A 30-identifier cluster: above warn_above the package's data test warns, above error_above it fails."""
    rows = [(f"w{i:03d}", f"w{i + 1:03d}" if i % 2 == 0 else f"w{i - 1:03d}", None, None, BASE) for i in range(30)]
    rows += [(f"w{i:03d}", f"w{i + 1:03d}", None, None, BASE) for i in range(1, 29, 2)]
    build(stitching, rows, "--full-refresh", "-s", "stitch_rows", "stitched", check=False)
    largest = max(len(c) for c in partition({n: m for n, (m, _) in output(stitching).items()}))
    assert largest >= 25

    def outcome(warn_above: int, error_above: int) -> set[str]:
        result = stitching.dbt("test", "-s", "stitched", check=False,
                               vars={"warn_above": warn_above, "error_above": error_above})
        return {str(r.status) for r in result.result.results if "max_cluster_size" in r.node.name}

    assert outcome(1000, 10000) == {"pass"}
    assert outcome(10, 1000) == {"warn"}
    assert outcome(5, 10) == {"fail"}


def big_graph(persons: int) -> list[Row]:
    """Each person 1-3 anonymous ids, most a user id and an email; every 500th person shares an email with the
    next (merging the two); junk emails on some rows."""
    import random

    rnd = random.Random(7)
    rows: list[Row] = []
    for p in range(persons):
        user = f"u{p}" if rnd.random() < 0.8 else None
        for k in range(rnd.randint(1, 3)):
            rows.append((f"a{p}x{k}", user, None, None, BASE + timedelta(seconds=rnd.randrange(10**7))))
        if user is not None:
            email = f"e{p + 1 if p % 500 == 0 else p}@mail.com" if rnd.random() < 0.9 else "unknown"
            rows.append((None, user, email, None, BASE + timedelta(seconds=rnd.randrange(10**7))))
    return rows


@pytest.fixture(scope="module")
def duckdb_stitching(new_project):
    return new_project("duckdb", name="stitching", source=PROJECT)


def test_memory_cap_spills_and_stitches_the_same(duckdb_stitching, tmp_path):
    """`dbt_studio_stitch_duckdb_memory_limit: 100MB` on a graph whose work tables do not fit in it: the build
    spills to disk, equals a union-find over the rows, and DuckDB's limit is reset afterwards. (64MB fails here:
    with 2 threads DuckDB's two string joins of the edge step need more than that before they can spill.)"""
    project = duckdb_stitching
    rows = big_graph(150_000)
    path = tmp_path / "big_rows.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id_a", "id_b", "id_c", "ts"])
        for r in rows:
            out.writerow([("" if v is None else v) for v in r[:3]] + [r[4].strftime("%Y-%m-%d %H:%M:%S")])
    project.messages.clear()
    project.dbt("run", "-s", "stitched_big", "--full-refresh",
                vars={"big_rows": path.as_posix(), "dbt_studio_stitch_duckdb_memory_limit": "100MB"})
    assert any("DuckDB memory_limit 100MB for this build" in m for m in project.messages)
    [spilled] = [int(m.split(": ")[-1].split()[0]) for m in project.messages if "temporary files" in m]
    assert spilled > 10  # work tables sat on disk: the cap made DuckDB spill
    got = project.query("select id_type, id_value, main_id from main.stitched_big")
    expected, _ = reference(rows)
    assert len(got) == len(expected) > 400_000
    assert partition({(t, v): m for t, v, m in got}) == partition(expected)
    [(limit,)] = project.query("select current_setting('memory_limit')")
    assert "MiB" not in limit or float(limit.split()[0]) > 1000  # back to DuckDB's default (80% of RAM)


def test_unset_the_memory_cap_is_40_percent_for_full_builds_only(duckdb_stitching):
    """Unset, a full build caps DuckDB at 40% of the machine's memory (DuckDB's own default is 80%) and resets it
    after; an incremental run is not capped (its comparison with the graph would spill); `''` caps nothing."""
    project = duckdb_stitching
    project.dbt("seed", "-s", "stitch_rows")
    [(before,)] = project.query("select current_setting('memory_limit')")

    def capped(*args: str, **kwargs) -> list[str]:
        project.messages.clear()
        project.dbt("run", "-s", "stitched", *args, **kwargs)
        return [m.split(": ", 1)[1] for m in project.messages if "memory_limit" in m or "temporary files" in m]

    assert capped("--full-refresh") == ["stitched: DuckDB memory_limit 40% for this build",
                                        "stitched: 0 MB in DuckDB temporary files"]
    assert capped() == []  # incremental
    assert capped(vars={"dbt_studio_stitch_duckdb_memory_limit": "30%"}) == [
        "stitched: DuckDB memory_limit 30% for this build", "stitched: 0 MB in DuckDB temporary files"]
    assert capped("--full-refresh", vars={"dbt_studio_stitch_duckdb_memory_limit": ""}) == []
    [(after,)] = project.query("select current_setting('memory_limit')")
    assert after == before


def test_memory_cap_that_is_not_a_size_names_the_var(duckdb_stitching):
    result = duckdb_stitching.dbt("run", "-s", "stitched_big", check=False,
                                  vars={"big_rows": "nowhere.csv", "dbt_studio_stitch_duckdb_memory_limit": "a lot"})
    messages = " ".join(str(r.message) for r in result.result.results)
    assert "var dbt_studio_stitch_duckdb_memory_limit is 'a lot', not a size like '4GB'" in messages


@pytest.mark.parametrize(("id_types", "message"), [
    ({"a": {"exclude_regexp": ["^x"]}}, "dbt_studio.id_edges in model 'stitched', id_types.a: unknown key "
                                        "'exclude_regexp' (did you mean 'exclude_regex'?)"),
    ({"b": {"max_edge": {"a": 3}}}, "dbt_studio.id_edges in model 'stitched', id_types.b: unknown key 'max_edge' "
                                    "(did you mean 'max_edges'?)"),
    ({"a": ["lower"]}, "dbt_studio.id_edges in model 'stitched', id_types.a: must be a mapping"),
])
def test_unknown_id_type_keys_fail_the_compile_with_a_did_you_mean(stitching, id_types, message):
    """A misspelled id type setting would silently leave junk identifiers in (the keys are the declared schema's)."""
    result = stitching.dbt("compile", "-s", "stitched", check=False, vars={"id_types": id_types})
    text = " ".join(str(r.message) for r in (getattr(result.result, "results", None) or [])) + str(result.exception)
    assert not result.success and message in text, text


def test_ids_as_one_column_name_is_a_list_of_that_column(stitching):
    """`'ids': 'id_a'` is the one column id_a, as entity_features takes it (it once became the id types 'i', 'd',
    '_', 'a'): the model compiles to the same SQL as `'ids': ['id_a']`."""
    models = stitching.root / "models"
    body = ("{{{{ config(materialized='id_stitcher') }}}}\n{{{{ dbt_studio.id_edges(sources=[{{'relation': "
            "ref('stitch_rows'), 'ids': {ids}, 'timestamp': 'ts'}}]) }}}}\n")
    (models / "one_id_string.sql").write_text(body.format(ids="'id_a'"))
    (models / "one_id_list.sql").write_text(body.format(ids="['id_a']"))
    try:
        stitching.dbt("compile", "-s", "one_id_string", "one_id_list")
        compiled = {p.stem: p.read_text() for p in (stitching.root / "target" / "compiled").rglob("one_id_*.sql")}
        assert "'id_a' as id_type" in compiled["one_id_string"]
        assert compiled["one_id_string"].replace("one_id_string", "X") == compiled["one_id_list"].replace(
            "one_id_list", "X")
        assert "'i' as id_type" not in compiled["one_id_string"]
    finally:
        for name in ("one_id_string", "one_id_list"):
            (models / f"{name}.sql").unlink()
