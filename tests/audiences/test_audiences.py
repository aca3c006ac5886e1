"""Audiences against an independent Python evaluator, on DuckDB and on Snowflake (fakesnow).

The test project (tests/projects/audiences) declares a small schema — users (parent), orders, orders_empty,
products, events (event model), memberships -> plans (through) — over seeds this module writes. Every audience
(one per condition type, plus random trees from hypothesis) is written as a model file into models/generated/ and
the lot is built with one `dbt build`; each result is compared with what plain Python computes over the rows read
back from the warehouse. Semantics under test (docs/audiences.md): a condition on NULL is false,
`not` is the complement, a relation with no matching rows has count 0.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import statistics
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ADAPTERS
from helpers.audience_reference import (  # the reference evaluator and the test project's data
    AS_OF,
    PAGES,
    REGIONS,
    Evaluator,
    make_data,
    read_back,
    write_seeds,
)
from helpers.held_file import duckdb_held
from helpers.sql_lint import unknown_functions

PROJECT = Path(__file__).resolve().parents[1] / "projects" / "audiences"

# -- audience model files -----------------------------------------------------------------------------------------


def jinja(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {jinja(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jinja(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def audience_sql(where, **kwargs) -> str:
    args = {"parent": "users", "where": where, **kwargs}
    body = ",\n    ".join(f"{k}={jinja(v)}" for k, v in args.items())
    return "{{ dbt_studio.audience(\n    " + body + ",\n    as_of='2026-01-01',\n) }}\n"


def write_models(root: Path, models: dict[str, str]) -> None:
    folder = root / "models" / "generated"
    for name, sql in models.items():
        (folder / f"{name}.sql").write_text(sql, encoding="utf-8")


# Each condition type (and NULL / empty cases) once; names are model names.
CASES: dict[str, dict | None] = {
    "all_users": None,
    "eq": {"column": "region", "op": "=", "value": "North"},
    "ne": {"column": "region", "op": "!=", "value": "North"},
    "lt": {"column": "age", "op": "<", "value": 30},
    "le": {"column": "age", "op": "<=", "value": 30},
    "gt": {"column": "age", "op": ">", "value": 60},
    "ge": {"column": "age", "op": ">=", "value": 60},
    "eq_null": {"column": "region", "op": "=", "value": None},
    "in_list": {"column": "region", "op": "in", "value": ["North", "East"]},
    "in_with_null": {"column": "region", "op": "in", "value": ["North", None]},
    "not_in": {"column": "region", "op": "not in", "value": ["North", "East"]},
    "in_empty": {"column": "region", "op": "in", "value": []},
    "not_in_empty": {"column": "region", "op": "not in", "value": []},
    "between": {"column": "age", "op": "between", "value": [25, 45]},
    "between_null": {"column": "age", "op": "between", "value": [25, None]},
    "contains": {"column": "email", "op": "contains", "value": "@mail"},
    "starts": {"column": "name", "op": "starts with", "value": "User 1"},
    "ends": {"column": "email", "op": "ends with", "value": "post.com"},
    "is_null": {"column": "email", "op": "is null"},
    "is_not_null": {"column": "email", "op": "is not null"},
    "within_days": {"column": "signup_at", "op": "within last days", "value": 120},
    "more_than_days": {"column": "signup_at", "op": "more than days ago", "value": 200},
    "before_date": {"column": "signup_at", "op": "before", "value": "2025-06-01"},
    "not_ne": {"not": {"column": "region", "op": "!=", "value": "North"}},
    "not_contains": {"not": {"column": "email", "op": "contains", "value": "@mail"}},
    "or_group": {"or": [{"column": "region", "op": "=", "value": "South"}, {"column": "age", "op": ">", "value": 70}]},
    "has": {"has": "orders"},
    "has_where": {"has": "orders", "where": {"column": "status", "op": "=", "value": "refunded"}},
    "has_not": {"has not": "orders"},
    "has_not_where": {"has not": "orders", "where": {"column": "amount", "op": ">", "value": 50}},
    "count_ge": {"has": "orders", "having": {"agg": "count", "op": ">=", "value": 4}},
    "count_at_most": {
        "has": "orders",
        "where": {"column": "status", "op": "=", "value": "paid"},
        "having": {"agg": "count", "op": "<=", "value": 1},
    },
    "count_exactly_0": {"has": "orders", "having": {"agg": "count", "op": "=", "value": 0}},
    "sum_ge": {"has": "orders", "having": {"agg": "sum", "column": "amount", "op": ">=", "value": 200}},
    "avg_lt": {"has": "orders", "having": {"agg": "avg", "column": "amount", "op": "<", "value": 40}},
    "min_max": {
        "has": "orders",
        "having": [
            {"agg": "min", "column": "amount", "op": "<", "value": 20},
            {"agg": "max", "column": "amount", "op": ">", "value": 80},
        ],
    },
    "not_sum": {"not": {"has": "orders", "having": {"agg": "sum", "column": "amount", "op": ">", "value": 150}}},
    "empty_has": {"has": "orders_empty"},
    "empty_has_not": {"has not": "orders_empty"},
    "empty_count_0": {"has": "orders_empty", "having": {"agg": "count", "op": "=", "value": 0}},
    "multi_hop": {"has": ["orders", "products"], "where": {"column": "category", "op": "=", "value": "fern"}},
    "multi_key": {
        "has": "orders",
        "where": {"has": "events", "where": {"column": "event", "op": "=", "value": "view"}},
    },
    "through": {"has": "plans", "via": "memberships", "where": {"column": "delivery", "op": "=", "value": "monthly"}},
    "through_count": {"has": "plans", "via": "memberships", "having": {"agg": "count", "op": ">=", "value": 2}},
    "performed": {"performed": "events", "where": {"column": "event", "op": "=", "value": "view"}},
    "performed_3_in_30": {
        "performed": "events",
        "where": {"column": "event", "op": "=", "value": "view"},
        "within_days": 30,
        "times": {"op": ">=", "value": 3},
    },
    "performed_at_most": {"performed": "events", "within_days": 14, "times": {"op": "<=", "value": 1}},
    "performed_exactly": {
        "performed": "events",
        "times": {"op": "=", "value": 2},
        "where": {"column": "page", "op": "starts with", "value": "/p/"},
    },
    "performed_between": {"performed": "events", "between": ["2025-11-01", "2025-12-01"]},
    "did_not_perform": {
        "did not perform": "events",
        "where": {"column": "event", "op": "=", "value": "buy"},
        "within_days": 60,
    },
    "first_before": {"performed": "events", "first": {"op": "before", "value": "2025-10-15"}},
    "last_after": {
        "performed": "events",
        "where": {"column": "event", "op": "=", "value": "cart"},
        "last": {"op": "after", "value": "2025-12-15"},
    },
    # orders -> users is only declared the other way round (users 1:many orders): relationships are bidirectional
    "reverse": {"has": "orders", "where": {"has": "users", "where": {"column": "region", "op": "=", "value": "North"}}},
    "first_within": {"performed": "events", "first": {"op": "within last days", "value": 80}},
    "last_long_ago": {
        "performed": "events",
        "where": {"column": "event", "op": "=", "value": "buy"},
        "last": {"op": "more than days ago", "value": 20},
    },
    "in_audience": {"and": [{"in audience": "c_has"}, {"column": "age", "op": ">", "value": 40}]},
    "not_in_audience": {"not in audience": "c_has"},
    "nested": {
        "and": [
            {
                "or": [
                    {"has": "orders", "having": {"agg": "sum", "column": "amount", "op": ">", "value": 100}},
                    {"not": {"performed": "events", "within_days": 30}},
                ]
            },
            {"not": {"column": "region", "op": "in", "value": ["South"]}},
        ]
    },
}


# -- random trees -------------------------------------------------------------------------------------------------


def _leaf(model: str):
    if model == "users":
        return st.one_of(
            st.builds(
                lambda op, v: {"column": "region", "op": op, "value": v},
                st.sampled_from(["=", "!=", "<", ">="]),
                st.sampled_from(REGIONS + [None]),
            ),
            st.builds(
                lambda op, v: {"column": "region", "op": op, "value": v},
                st.sampled_from(["in", "not in"]),
                st.lists(st.sampled_from(REGIONS + [None]), max_size=3),
            ),
            st.builds(
                lambda op, v: {"column": "age", "op": op, "value": v},
                st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
                st.integers(17, 81),
            ),
            st.builds(
                lambda a, b: {"column": "age", "op": "between", "value": [a, b]},
                st.integers(17, 60),
                st.integers(30, 81),
            ),
            st.builds(
                lambda op, v: {"column": "email", "op": op, "value": v},
                st.sampled_from(["contains", "starts with", "ends with"]),
                st.sampled_from(["mail", "user1", ".com", "post.com"]),
            ),
            st.builds(lambda op: {"column": "email", "op": op}, st.sampled_from(["is null", "is not null"])),
            st.builds(
                lambda op, d: {"column": "signup_at", "op": op, "value": d},
                st.sampled_from(["within last days", "more than days ago"]),
                st.integers(1, 400),
            ),
        )
    if model in ("orders", "orders_empty"):
        return st.one_of(
            st.builds(
                lambda op, v: {"column": "amount", "op": op, "value": v},
                st.sampled_from(["<", ">=", "=", "!="]),
                st.integers(1, 120),
            ),
            st.builds(
                lambda v: {"column": "status", "op": "=", "value": v}, st.sampled_from(["paid", "refunded", None])
            ),
            st.builds(lambda op: {"column": "product_id", "op": op}, st.sampled_from(["is null", "is not null"])),
        )
    if model == "events":
        return st.one_of(
            st.builds(lambda v: {"column": "event", "op": "=", "value": v}, st.sampled_from(["view", "cart", "buy"])),
            st.builds(
                lambda v: {"column": "page", "op": "in", "value": v},
                st.lists(st.sampled_from(PAGES), min_size=1, max_size=2),
            ),
            st.builds(lambda d: {"column": "ts", "op": "within last days", "value": d}, st.integers(1, 90)),
        )
    if model == "plans":
        return st.builds(
            lambda v: {"column": "delivery", "op": "=", "value": v}, st.sampled_from(["monthly", "annually"])
        )
    return st.builds(
        lambda v: {"column": "category", "op": "=", "value": v}, st.sampled_from(["fern", "tree", "succulent"])
    )


def _where(model: str):
    return st.one_of(st.none(), _leaf(model), st.builds(lambda a, b: {"or": [a, b]}, _leaf(model), _leaf(model)))


def _with(base: dict, **extra) -> dict:
    return {**base, **{k: v for k, v in extra.items() if v is not None}}


def _relational():
    having = st.one_of(
        st.builds(
            lambda op, v: {"agg": "count", "op": op, "value": v},
            st.sampled_from(["=", "<=", ">=", "<"]),
            st.integers(0, 4),
        ),
        st.builds(
            lambda fn, op, v: {"agg": fn, "column": "amount", "op": op, "value": v},
            st.sampled_from(["sum", "avg", "min", "max"]),
            st.sampled_from(["<", ">="]),
            st.integers(10, 250),
        ),
    )
    return st.one_of(
        st.builds(
            lambda rel, w, h: _with({"has": rel}, where=w, having=h),
            st.sampled_from(["orders", "orders_empty"]),
            _where("orders"),
            st.one_of(st.none(), having),
        ),
        st.builds(lambda w: _with({"has not": "orders"}, where=w), _where("orders")),
        st.builds(lambda w: _with({"has": ["orders", "products"]}, where=w), _where("products")),
        st.builds(lambda w: _with({"has": "plans", "via": "memberships"}, where=w), _where("plans")),
        st.builds(
            lambda w, days, t: _with({"performed": "events"}, where=w, within_days=days, times=t),
            _where("events"),
            st.one_of(st.none(), st.integers(1, 60)),
            st.one_of(
                st.none(),
                st.builds(lambda op, v: {"op": op, "value": v}, st.sampled_from([">=", "<=", "="]), st.integers(0, 5)),
            ),
        ),
        st.builds(
            lambda w, days: _with({"did not perform": "events"}, where=w, within_days=days),
            _where("events"),
            st.one_of(st.none(), st.integers(1, 60)),
        ),
        st.builds(
            lambda k, op, d: {"performed": "events", k: {"op": op, "value": d}},
            st.sampled_from(["first", "last"]),
            st.sampled_from(["before", "after"]),
            st.sampled_from(["2025-10-15", "2025-12-01", "2025-12-25"]),
        ),
        st.builds(lambda name: {"in audience": name}, st.sampled_from(["c_has", "c_eq"])),
    )


def shaped(depth: int):
    """A tree exactly `depth` deep: groups and nots above, at least one child one level less deep."""
    leaves = st.one_of(_leaf("users"), _relational())
    if depth <= 1:
        return leaves
    deep = shaped(depth - 1)
    any_tree = st.integers(1, depth - 1).flatmap(shaped)
    group = st.builds(
        lambda kind, first, rest, at: {kind: rest[:at] + [first] + rest[at:]},
        st.sampled_from(["and", "or"]),
        deep,
        st.lists(any_tree, max_size=2),
        st.integers(0, 2),
    )
    return st.one_of(group, group, st.builds(lambda child: {"not": child}, deep))


def trees(max_depth: int = 4):
    """Condition trees of depth 1..max_depth (hypothesis itself would draw mostly leaves)."""
    return st.integers(1, max_depth).flatmap(shaped)


# -- fixtures -----------------------------------------------------------------------------------------------------


class Built:
    def __init__(self, project, data) -> None:
        self.project = project
        self.tables = read_back(project)
        self.ev = Evaluator(self.tables)
        self.data = data
        self._members: dict[str, set[str]] = {}

    def members(self, name: str) -> set[str]:
        if name not in self._members:
            self.load_members([name])
        return self._members[name]

    def load_members(self, names: list[str]) -> None:
        """Members of many audiences in one query (each query opens a connection, which costs on fakesnow)."""
        query = "\nunion all\n".join(
            f"select '{n}' as audience_name, user_id from {self.project.relation(n)}" for n in names
        )
        for n in names:
            self._members[n] = set()
        for audience_name, user_id in self.project.query(query):
            self._members[audience_name].add(user_id)

    def expected(self, where) -> set[str]:
        return self.ev.audience(where)


def build_cases(project, cases: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    models = {f"c_{name}": audience_sql(where) for name, where in cases.items()}
    models.update(extra or {})
    write_models(project.root, models)
    project.dbt("build")


SPLITS = {"groups": {"a": 50, "b": 30, "holdout": 20}, "holdout": "holdout", "salt": "s1"}
SPLIT_MODELS = {
    "split_many": audience_sql(None, parent="many_users", splits=SPLITS),
    "split_many_again": audience_sql(None, parent="many_users", splits=SPLITS),
    "split_other_salt": audience_sql(None, parent="many_users", splits={**SPLITS, "salt": "s2"}),
    "traits": audience_sql(
        {"has": "orders"},
        columns=["region"],
        traits=[
            {"name": "n_orders", "related": "orders", "agg": "count"},
            {
                "name": "n_paid",
                "related": "orders",
                "agg": "count",
                "where": {"column": "status", "op": "=", "value": "paid"},
            },
            {"name": "total", "related": "orders", "agg": "sum", "column": "amount"},
            {"name": "biggest", "related": "orders", "agg": "max", "column": "amount"},
            {
                "name": "first_product",
                "related": "orders",
                "agg": "first",
                "column": "product_id",
                "order_by": "ordered_at",
            },
            {
                "name": "last_product",
                "related": "orders",
                "agg": "last",
                "column": "product_id",
                "order_by": "ordered_at",
            },
            {"name": "top_page", "related": "events", "agg": "most_frequent", "column": "page"},
            {"name": "n_plans", "related": "plans", "via": "memberships", "agg": "count"},
        ],
    ),
}


@pytest.fixture(scope="module", params=ADAPTERS)
def built(request, new_project):
    project = new_project(request.param, name="audiences", source=PROJECT)
    data = make_data()
    write_seeds(project.root, data)
    build_cases(project, CASES, SPLIT_MODELS)
    result = Built(project, data)
    result.load_members([f"c_{name}" for name in CASES])
    result.ev.audiences = {"c_has": result.expected(CASES["has"]), "c_eq": result.expected(CASES["eq"])}
    return result


# -- tests --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_each_condition_type_matches_the_reference(built, name):
    expected = built.expected(CASES[name])
    assert built.members(f"c_{name}") == expected, CASES[name]


def test_the_cases_are_not_trivial(built):
    sizes = {name: len(built.expected(where)) for name, where in CASES.items()}
    everyone = sizes["all_users"]
    interesting = [n for n, s in sizes.items() if 0 < s < everyone]
    assert len(interesting) >= len(CASES) - 10, sizes
    assert sizes["empty_has"] == 0 and sizes["empty_has_not"] == everyone == sizes["empty_count_0"]
    # a NULL never equals, nor differs from, anything: = and != together miss the users without a region
    assert sizes["eq"] + sizes["ne"] < everyone


def test_traits_match_the_reference(built):
    project, ev = built.project, built.ev
    cols = [
        "user_id",
        "region",
        "n_orders",
        "n_paid",
        "total",
        "biggest",
        "first_product",
        "last_product",
        "top_page",
        "n_plans",
    ]
    got = {
        r[0]: dict(zip(cols, r, strict=True))
        for r in project.query(f"select {', '.join(cols)} from {project.relation('traits')}")
    }
    users = {u["user_id"]: u for u in built.tables["users"]}
    assert set(got) == built.expected({"has": "orders"})
    for uid, row in got.items():
        orders = ev.hop_rows("users", users[uid], "orders")
        assert row["n_orders"] == len(orders)
        assert row["n_paid"] == sum(o["status"] == "paid" for o in orders)
        for column, fn in (("total", "sum"), ("biggest", "max")):  # fakesnow hands decimals back through floats
            want = ev.aggregate(fn, "amount", orders)
            assert (row[column] is None) == (want is None)
            assert want is None or abs(float(row[column]) - float(want)) < 1e-6
        dated = sorted(orders, key=lambda o: (o["ordered_at"], o["product_id"] is None, o["product_id"] or ""))
        if len({o["ordered_at"] for o in orders}) == len(orders):  # no ties on the order key
            assert row["first_product"] == dated[0]["product_id"]
            assert row["last_product"] == max(orders, key=lambda o: o["ordered_at"])["product_id"]
        pages = [e["page"] for e in ev.hop_rows("users", users[uid], "events") if e["page"] is not None]
        if pages:
            top = max(pages.count(p) for p in pages)
            assert row["top_page"] == min(p for p in pages if pages.count(p) == top)
        else:
            assert row["top_page"] is None
        assert row["n_plans"] == len(ev.hop_rows("users", users[uid], "plans"))


def test_splits_have_the_asked_proportions_and_are_stable(built):
    project = built.project

    def groups(name: str) -> dict[str, tuple[str, bool]]:
        return {
            r[0]: (r[1], bool(r[2]))
            for r in project.query(f"select user_id, split_group, is_holdout from {project.relation(name)}")
        }

    first = groups("split_many")
    assert len(first) == 10_000
    share = {g: sum(v[0] == g for v in first.values()) / len(first) for g in SPLITS["groups"]}
    for group, percent in SPLITS["groups"].items():
        assert abs(share[group] - percent / 100) < 0.03, share
    assert all(holdout == (group == "holdout") for group, holdout in first.values())
    # buckets are md5-based, so exact on both warehouses (and fakesnow): the first 7 hex digits, modulo 10000
    for key, (group, _) in first.items():
        bucket = int(hashlib.md5(f"s1|{key}".encode()).hexdigest()[:7], 16) % 10000
        assert group == ("a" if bucket < 5000 else "b" if bucket < 8000 else "holdout"), key
    assert groups("split_many_again") == first  # same salt, same keys: same groups
    other = groups("split_other_salt")
    moved = sum(first[k][0] != other[k][0] for k in first) / len(first)
    assert moved > 0.3  # another salt reshuffles
    project.dbt("build", "-s", "split_many")
    assert groups("split_many") == first  # and a rebuild changes nothing


@settings(max_examples=2, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(random_trees=st.lists(trees(), min_size=30, max_size=30))
def test_random_condition_trees_match_the_reference(built, random_trees):
    """Random trees of depth <= 4, thirty to a build (each dbt invocation costs seconds)."""
    if len({json.dumps(t) for t in random_trees}) < 15:
        return  # hypothesis opens with its simplest example (thirty copies of one leaf): not worth a build
    names = {f"random_{i:02d}": tree for i, tree in enumerate(random_trees)}
    write_models(built.project.root, {n: audience_sql(t) for n, t in names.items()})
    built.project.dbt("build", "-s", *names)
    built.load_members(list(names))
    sizes = []
    for name, tree in names.items():
        assert built.members(name) == built.expected(tree), tree
        sizes.append(len(built.members(name)))
    assert len(set(sizes)) >= 4, sizes  # the trees select different audiences, not all or nothing
    if built.project.adapter == "snowflake":  # everything above compiled and ran: lint what Snowflake ran
        assert built.project.sql_log
        assert unknown_functions(built.project.sql_log) == []


def test_proportions_of_a_split_hash_are_uniform(built):
    """Buckets of the portable hash (Snowflake) and DuckDB's hash are spread evenly over 10 deciles."""
    project = built.project
    rows = project.query(f"select split_group from {project.relation('split_other_salt')}")
    counts = [sum(r[0] == g for r in rows) for g in ("a", "b", "holdout")]
    assert statistics.pstdev([c / p for c, p in zip(counts, (50, 30, 20), strict=True)]) < 6


def test_an_audience_compile_reads_each_relation_it_depends_on_once(built):
    """Every audience compile builds the whole schema, and checks the declarations (keys, labels, timestamps, join
    columns) against the columns of the relations it depends on: dbt built those before it, so one read each serves
    every audience of the invocation. Before, each compile read every declared model (1,032 reads for this
    module's audiences, a query each on Snowflake); models an audience does not read are checked against their
    documented columns, never the audiences' and other undeclared models' relations."""
    project = built.project
    names = ("c_eq", "c_has", "c_performed")
    project.sql_log.clear()
    project.dbt("compile", "--threads", "1", "-s", *names)  # (two threads may both read a model first)
    described = (re.search(r"describe\s+(?:table\s+)?([^\s)]+)", sql, re.IGNORECASE) for sql in project.sql_log)
    reads = Counter(m.group(1).replace('"', "").rsplit(".", 1)[-1].lower() for m in described if m)
    nodes = json.loads((project.root / "target" / "manifest.json").read_text(encoding="utf-8"))["nodes"]
    by_name = {n["name"]: n for n in nodes.values() if n["resource_type"] == "model"}
    needed = {nodes[uid]["name"] for name in names for uid in by_name[name]["depends_on"]["nodes"]}
    assert needed == {"users", "orders", "events"}  # the audiences' own refs (the test reads them from dbt)
    assert reads == Counter({name: 1 for name in needed})


# -- validation, dependencies, CLI ----------------------------------------------------------------------------------


def node_errors(result) -> dict[str, str]:
    """{model name: error message} of a dbt command's failed nodes."""
    out = {}
    for r in getattr(result.result, "results", None) or []:
        if str(r.status) in ("error", "fail"):
            out[r.node.name] = str(r.message)
    return out


BAD_AUDIENCES = {
    "bad_column": ({"column": "nope", "op": "=", "value": 1}, "unknown column 'nope' of model 'users'"),
    "bad_relation": ({"has": "products"}, "model 'users' has no relationship to 'products'"),
    "bad_operator": ({"column": "age", "op": "~", "value": 1}, "where.op: must be one of =, !=, <>, <, <=, >, >=, "),
    "bad_event": ({"performed": "orders"}, "model 'orders' is not an event model"),
    "bad_through": ({"has": "plans"}, "reads model 'memberships'"),
    "bad_having": ({"has": "orders", "having": {"agg": "median", "column": "amount"}},
                   "where.having.agg: must be one of count, sum, avg, min, max, not 'median'"),
    "bad_membership": ({"in audience": "users"}, "'users' is not an audience model"),
    "bad_key": ({"performed": "events", "within_day": 30}, "where.within_day: unknown key 'within_day' (did you "
                                                          "mean 'within_days'?)"),
    "bad_nested_key": ({"and": [{"column": "age", "op": ">", "value": 1},
                                {"has": "orders", "having": {"agg": "sum", "colum": "amount"}}]},
                       "where.and[1].having.colum: unknown key 'colum' (did you mean 'column'?)"),
}


@pytest.fixture(scope="module")
def bad_project(new_project):
    project = new_project("duckdb", name="audiences_bad", source=PROJECT)
    write_seeds(project.root, make_data())
    return project


def test_compile_errors_are_one_line_and_name_the_audience(bad_project):
    models = {name: audience_sql(where) for name, (where, _) in BAD_AUDIENCES.items()}
    models["bad_parent"] = audience_sql(None, parent="orders")
    models["bad_splits"] = audience_sql(None, splits={"groups": {"a": 50, "b": 40}})
    models["bad_trait_key"] = audience_sql(None, traits=[{"name": "n", "related": "orders", "wher": {"column": "x"}}])
    write_models(bad_project.root, models)
    errors = node_errors(bad_project.dbt("run", "-s", *models, check=False))
    expected = {name: text for name, (_, text) in BAD_AUDIENCES.items()}
    expected |= {"bad_parent": "model 'orders' is not a parent model", "bad_splits": "add up to 90, not 100",
                 "bad_trait_key": "traits[0].wher: unknown key 'wher' (did you mean 'where'?)"}
    assert set(errors) == set(expected)
    for name, text in expected.items():
        assert f"dbt_studio: audience '{name}': " in errors[name] and text in errors[name], errors[name]

    # validate finds each of them from the manifest alone, in the same words and with the same key path
    from sync_runner.project.artifacts import load_manifest
    from sync_runner.validate import validate_manifest

    problems = [str(p) for p in validate_manifest(load_manifest(bad_project.root))]
    for name, text in expected.items():
        compiled = errors[name].split(f"dbt_studio: audience '{name}': ", 1)[1].split("\n")[0].strip()
        ours = [p for p in problems if p.startswith(f"models/generated/{name}.sql: model '{name}': ")]
        assert len(ours) == 1 and text in ours[0], (name, ours)
        assert ours[0].endswith(f"dbt_studio.audience.{compiled}"), (ours[0], compiled)


def test_schema_errors_name_the_model_in_macros_and_in_validate(bad_project):
    from sync_runner.project.artifacts import load_manifest
    from sync_runner.validate import validate_manifest

    schema = bad_project.root / "models" / "_schema.yml"
    original = schema.read_text(encoding="utf-8")
    try:
        merge = original.replace(
            "{to: orders, cardinality: 1:many, join: {user_id: user_id}}",
            "{to: orders, cardinality: 1:many, join: {user_id: user_id}, merge_columns: true}",
        )
        schema.write_text(merge, encoding="utf-8")
        write_models(bad_project.root, {"ok_audience": audience_sql({"has": "orders"})})
        errors = node_errors(bad_project.dbt("run", "-s", "ok_audience", check=False))
        assert "dbt_studio: model 'users': relationship 'orders': merge_columns" in errors["ok_audience"]
        schema.write_text(
            merge.replace(
                "{name: product, to: products, cardinality: many:1, join: {product_id: product_id}}",
                "{name: product, to: products, cardinality: many:1, join: {product_id: sku}}",
            ),
            encoding="utf-8",
        )
        errors = node_errors(bad_project.dbt("run", "-s", "ok_audience", check=False))
        assert any(f"dbt_studio: model '{m}': relationship " in errors["ok_audience"] for m in ("users", "orders"))
        problems = [str(p) for p in validate_manifest(load_manifest(bad_project.root))]
        assert any("model 'users'" in p and "many side of 1:many" in p for p in problems), problems
        assert any("model 'orders'" in p and "unknown column 'sku' of 'products'" in p for p in problems), problems
    finally:
        schema.write_text(original, encoding="utf-8")
        for f in (bad_project.root / "models" / "generated").glob("*.sql"):
            f.unlink()
    # an unknown model in a tree fails at parse time, naming the audience (dbt's own message)
    write_models(bad_project.root, {"bad_model": audience_sql({"has": "nowhere"})})
    result = bad_project.dbt("compile", "-s", "bad_model", check=False)
    assert not result.success and "bad_model" in str(result.exception) and "nowhere" in str(result.exception)
    (bad_project.root / "models" / "generated" / "bad_model.sql").unlink()
    shutil.rmtree(bad_project.root / "target", ignore_errors=True)


def test_an_audience_does_not_check_a_built_model_it_does_not_read(bad_project):
    """A column added to a model's SQL and a relationship declared on it, in one change: until that model is
    rebuilt, an audience that does not read it still builds (in a run, dbt may not have rebuilt the model yet when
    the audience compiles, and the YAML docs lag the SQL), while validate, which reads every relation, names the
    column until the model is built, and nothing once it is."""
    from sync_runner.project.artifacts import load_manifest
    from sync_runner.project.target import DbtTarget
    from sync_runner.validate import relation_columns, validate_manifest

    root = bad_project.root
    schema, products = root / "models" / "_schema.yml", root / "models" / "products.sql"
    original_schema, original_products = schema.read_text(encoding="utf-8"), products.read_text(encoding="utf-8")
    where = DbtTarget(root, root, "duckdb")

    def validated() -> list[str]:
        manifest = load_manifest(root)
        bad_project.release()
        return [str(p) for p in validate_manifest(manifest.with_columns(relation_columns(manifest, where)))]

    write_models(root, {"ok_audience": audience_sql({"has": "orders"})})
    bad_project.release()  # (an earlier test removed target/, and the database file with it, while dbt held it)
    try:
        bad_project.dbt("build", "-s", "+users", "+orders", "+products")
        products.write_text("select *, 'sku-' || product_id as sku from {{ ref('seed_products') }}\n",
                            encoding="utf-8")
        schema.write_text(original_schema.replace("join: {product_id: product_id}}", "join: {product_id: sku}}", 1),
                          encoding="utf-8")
        assert node_errors(bad_project.dbt("run", "-s", "ok_audience", check=False)) == {}
        problems = validated()
        assert any("model 'orders'" in p and "unknown column 'sku' of 'products' (columns of the relation" in p
                   for p in problems), problems
        bad_project.dbt("run", "-s", "products")
        assert validated() == []
    finally:
        schema.write_text(original_schema, encoding="utf-8")
        products.write_text(original_products, encoding="utf-8")
        (root / "models" / "generated" / "ok_audience.sql").unlink()
        bad_project.release()  # the other tests of this project expect it not built
        shutil.rmtree(root / "target", ignore_errors=True)


def test_the_columns_an_audience_build_read_are_kept_for_one_invocation_only(bad_project):
    """The columns kept for the nodes of one dbt invocation are read again by the next one, even when a program
    hands dbt the same manifest (and so the same `graph`) for both: a column added in between is seen."""
    from dbt.cli.main import dbtRunner

    from sync_runner.project.target import working_directory

    root = bad_project.root
    write_models(root, {"on_new_column": audience_sql({"column": "vip", "op": "=", "value": True})})
    flags = ["--quiet", "--no-use-colors", "--no-send-anonymous-usage-stats"]
    bad_project.release()  # (an earlier test removed target/, and the database file with it, while dbt held it)
    try:
        bad_project.dbt("build", "-s", "+users")
        with working_directory(root):
            parsed = dbtRunner().invoke([*flags, "parse", *bad_project.where.args()])
            runner = dbtRunner(manifest=parsed.result)
            compile_it = [*flags, "compile", *bad_project.where.args(), "-s", "on_new_column"]
            first = runner.invoke(compile_it)
            error = str(node_errors(first).get("on_new_column", first.exception))
            assert not first.success and "unknown column 'vip' of model 'users'" in error, error
            bad_project.execute(f"create or replace view {bad_project.relation('users')} as "
                                f"select *, true as vip from {bad_project.relation('seed_users')}")
            second = runner.invoke(compile_it)
        assert second.success, node_errors(second).get("on_new_column", second.exception)
    finally:
        (root / "models" / "generated" / "on_new_column.sql").unlink()
        bad_project.release()  # the other tests of this project expect it not built
        shutil.rmtree(root / "target", ignore_errors=True)


SCHEMA_MISTAKES = [
    # (text in _schema.yml, replaced by, the model, the one message both dbt compile and validate give)
    ("{to: orders, cardinality: 1:many,", "{to: orders, cardinality: 1:1,", "users",
     "meta.dbt_studio.relationships[0].cardinality: must be one of 1:1, 1:many, many:1, not 61 (YAML reads an "
     "unquoted 1:1 as the number 61: quote it, \"1:1\")"),
    ("name: plans\n    config:\n      meta:\n        dbt_studio: {model_type: related}",
     "name: plans\n    config:\n      meta:\n        dbt_studio: {model_type: relatd}", "plans",
     "meta.dbt_studio.model_type: must be one of parent, related, event, not 'relatd'"),
    ("{to: orders_empty, cardinality: 1:many, join: {user_id: user_id}}", "{to: orders_empty, cardinality: 1:many}",
     "users", "meta.dbt_studio.relationships[1].join: missing (a direct relationship needs cardinality and join)"),
    ("{to: orders, cardinality: 1:many, join: {user_id: user_id}}",
     "{to: orders, cardinality: 1:many, join: {user_id: user_id}, merge_columns: true}", "users",
     "relationship 'orders': merge_columns: 'orders' is on the many side of 1:many; columns merge only from the one "
     "side onto the many side (declare the merge on 'orders')"),
    ("join: {product_id: product_id}}", "join: {product_id: sku}}", "orders",
     "relationship 'product': unknown column 'sku' of 'products' (documented columns; the relation is not built "
     "yet: product_id, category, list_price)"),
    ("{name: product, to: products,", "{name: product, to: product_catalog,", "orders",
     "relationship 'product': unknown model 'product_catalog'"),
    ("{model_type: event, timestamp: ts}", "{model_type: event}", "events",
     "meta.dbt_studio.timestamp: an event model needs a timestamp column"),
    ("through: memberships}", "through: products}", "users",
     "through relationship 'plans': needs direct relationships users -> products and products -> plans"),
]


def test_schema_rules_give_the_same_message_at_compile_time_and_in_validate(bad_project):
    """The package's `_schema` macro owns the schema rules; validate runs it from the manifest, so for each broken
    declaration `dbt compile` and `dbt-studio validate` print the same one message (written out above)."""
    from sync_runner.project.artifacts import load_manifest
    from sync_runner.validate import validate_manifest

    schema = bad_project.root / "models" / "_schema.yml"
    original = schema.read_text(encoding="utf-8")
    write_models(bad_project.root, {"ok_audience": audience_sql({"has": "orders"})})
    mismatches = []
    try:
        for old, new, model, message in SCHEMA_MISTAKES:
            assert old in original, old
            schema.write_text(original.replace(old, new, 1), encoding="utf-8")
            result = bad_project.dbt("compile", "-s", "ok_audience", check=False)
            compiled = [line.strip() for line in str(node_errors(result).get("ok_audience", result.exception))
                        .splitlines() if "dbt_studio: model" in line]
            validated = [str(p) for p in validate_manifest(load_manifest(bad_project.root))]
            if compiled != [f"dbt_studio: model '{model}': {message}"] \
                    or validated != [f"models/_schema.yml: model '{model}': {message}"]:
                mismatches.append((message, compiled, validated))
    finally:
        schema.write_text(original, encoding="utf-8")
        (bad_project.root / "models" / "generated" / "ok_audience.sql").unlink()
    assert mismatches == []


OPERATORS = ("=, !=, <>, <, <=, >, >=, in, not in, between, contains, starts with, ends with, is null, is not null, "
             "within last days, more than days ago, before, after")
AUDIENCE_MISTAKES = [
    # (the audience's arguments, the key path and message both dbt compile and validate give)
    ({"where": {"performed": "events", "within_day": 30}},
     "where.within_day: unknown key 'within_day' (did you mean 'within_days'?)"),
    ({"where": {"and": [{"column": "age", "op": ">", "value": 1},
                        {"has": "orders", "having": {"agg": "sum", "colum": "amount"}}]}},
     "where.and[1].having.colum: unknown key 'colum' (did you mean 'column'?)"),
    ({"where": {"column": "age", "op": "==", "value": 1}}, f"where.op: must be one of {OPERATORS}, not '=='"),
    ({"where": {"not": {"column": "age", "op": "greater", "value": 1}}},
     f"where.not.op: must be one of {OPERATORS}, not 'greater'"),
    ({"where": {"has": "orders", "having": {"agg": "median", "column": "amount"}}},
     "where.having.agg: must be one of count, sum, avg, min, max, not 'median'"),
    ({"where": {"colum": "age", "op": ">", "value": 1}},
     "where: unknown condition with keys colum, op, value (a condition has one of: and, or, not, column, has, has "
     "not, performed, did not perform, in audience, not in audience)"),
    ({"where": {"performed": "events", "within_days": "thirty"}}, "where.within_days: must be a number > 0"),
    ({"where": {"or": [{"performed": "events", "within_days": 0}]}}, "where.or[0].within_days: must be a number > 0"),
    ({"where": None, "traits": [{"name": "n", "related": "orders", "agg": "median", "column": "amount"}]},
     "traits[0].agg: must be one of count, sum, avg, min, max, first, last, most_frequent, not 'median'"),
    ({"where": None, "traits": [{"name": "n", "related": "orders", "wher": {"column": "amount"}}]},
     "traits[0].wher: unknown key 'wher' (did you mean 'where'?)"),
]


def test_audience_mistakes_give_the_same_message_at_compile_time_and_in_validate(bad_project):
    """A mistake in an audience's condition tree or traits (an unknown key, an operator or aggregate that does not
    exist, a node of no known kind, a number of days that is not one) is the same one line at `dbt compile` and in
    `dbt-studio validate`, key path included; only the prefix differs (the macro names the audience, validate its
    file, model and block)."""
    from sync_runner.project.artifacts import load_manifest
    from sync_runner.validate import validate_manifest

    mismatches = []
    for i, (arguments, message) in enumerate(AUDIENCE_MISTAKES):
        name = f"mistake_{i}"
        write_models(bad_project.root, {name: audience_sql(**arguments)})
        try:
            result = bad_project.dbt("compile", "-s", name, check=False)
            compiled = [line.strip() for line in str(node_errors(result).get(name, result.exception)).splitlines()
                        if line.strip().startswith("dbt_studio: audience")]
            validated = [str(p) for p in validate_manifest(load_manifest(bad_project.root)) if p.model == name]
        finally:
            (bad_project.root / "models" / "generated" / f"{name}.sql").unlink()
        if compiled != [f"dbt_studio: audience '{name}': {message}"] \
                or validated != [f"models/generated/{name}.sql: model '{name}': dbt_studio.audience.{message}"]:
            mismatches.append((message, compiled, validated))
    assert mismatches == []

def test_a_duplicate_primary_key_fails_the_package_data_test(bad_project):
    (bad_project.root / "models" / "generated" / "dup_users.sql").write_text(
        "select * from {{ ref('users') }} union all select * from {{ ref('users') }} where user_id = 'u01'\n"
        "union all select * from {{ ref('users') }} where user_id = 'u02'\n",
        encoding="utf-8",
    )
    (bad_project.root / "models" / "generated" / "_dup.yml").write_text(
        "version: 2\nmodels:\n  - name: dup_users\n    config:\n      meta:\n        dbt_studio:\n"
        "          model_type: parent\n          primary_key: user_id\n"
        "    data_tests: [dbt_studio.unique_primary_key]\n",
        encoding="utf-8",
    )
    try:
        result = bad_project.dbt("build", "-s", "+dup_users", check=False)
        failed = [r for r in result.result.results if str(r.status) == "fail"]
        assert [r.node.name for r in failed] == ["dbt_studio_unique_primary_key_dup_users_"]
        assert failed[0].failures == 2
    finally:
        for f in ("dup_users.sql", "_dup.yml"):
            (bad_project.root / "models" / "generated" / f).unlink()


def test_a_merge_whose_data_contradicts_its_cardinality_fails_the_build_naming_it(bad_project):
    """orders many:1 products merges `category` onto orders: right while products has one row per product_id; the
    same declaration to a model with a repeated product_id would repeat orders, so the build fails before writing
    a row, naming the file, model, relationship, declared cardinality and the repeated key, and the table built
    before keeps its rows."""
    root = bad_project.root
    schema = root / "models" / "_schema.yml"
    original = schema.read_text(encoding="utf-8")
    declared = "{name: product, to: products, cardinality: many:1, join: {product_id: product_id}}"
    assert declared in original
    generated = root / "models" / "generated"
    (generated / "dup_products.sql").write_text(
        "select * from {{ ref('products') }}\nunion all\nselect * from {{ ref('products') }}\n"
        "where product_id = (select min(product_id) from {{ ref('products') }})\n", encoding="utf-8")
    (generated / "orders_merged.sql").write_text(
        "-- depends_on: {{ ref('products') }}\n-- depends_on: {{ ref('dup_products') }}\n"
        "{{ dbt_studio.merged_columns('orders') }}\n", encoding="utf-8")
    try:
        schema.write_text(original.replace(declared, declared[:-1] + ", merge_columns: [category]}"), encoding="utf-8")
        bad_project.dbt("build", "-s", "+orders_merged")
        [(orders,)] = bad_project.query("select count(*) from orders")
        [(merged, categories)] = bad_project.query("select count(*), count(product__category) from orders_merged")
        assert merged == orders and categories > 0

        schema.write_text(original.replace(declared, declared.replace("to: products", "to: dup_products")[:-1]
                                           + ", merge_columns: [category]}"), encoding="utf-8")
        errors = node_errors(bad_project.dbt("build", "-s", "+orders_merged", check=False))
        assert list(errors) == ["orders_merged"], errors
        [(key,)] = bad_project.query("select min(product_id) from products")
        line = errors["orders_merged"].split("dbt_studio: ", 1)[1].splitlines()[0]
        assert line == (f"models/_schema.yml: model 'orders': relationship 'product' is declared many:1, but "
                        f"'dup_products' has 2 rows with product_id = '{key}': merging its columns into "
                        "'orders_merged' would repeat rows of 'orders'; fix the cardinality (and merge from the "
                        "other side) or the data"), line
        assert bad_project.query("select count(*) from orders_merged") == [(orders,)]  # the last good build
    finally:
        schema.write_text(original, encoding="utf-8")
        for f in ("dup_products.sql", "orders_merged.sql"):
            (generated / f).unlink()


def test_an_audience_depends_on_every_model_it_reads(built_example):
    project = built_example("duckdb")
    result = project.dbt("ls", "-s", "+monthly_subscribers", "--resource-type", "model", "--output", "name")
    assert set(result.result) == {"monthly_subscribers", "stg_users", "stg_memberships", "stg_subscriptions"}
    result = project.dbt("ls", "-s", "+high_value_buyers", "--resource-type", "model", "--output", "name")
    assert set(result.result) == {"high_value_buyers", "stg_users", "stg_purchases"}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_example_audiences_and_preview(built_example, adapter):
    from click.testing import CliRunner

    from sync_runner.cli import cli

    project = built_example(adapter)
    users = {r[0] for r in project.query(f"select user_id from {project.relation('stg_users')}")}
    buyers = {r[0] for r in project.query(f"select distinct user_id from {project.relation('stg_purchases')}")}
    views = project.query(f"select user_id, timestamp from {project.relation('stg_product_viewed')}")
    recent: dict[str, int] = {}
    for uid, ts in views:
        if AS_OF - timedelta(days=30) <= ts <= AS_OF:
            recent[uid] = recent.get(uid, 0) + 1
    expected = {u for u in users if recent.get(u, 0) >= 3 and u not in buyers}
    got = {r[0] for r in project.query(f"select user_id from {project.relation('viewed_not_bought')}")}
    assert got == expected and got
    [(n, holdout)] = project.query(
        f"select count(*), sum(case when is_holdout then 1 else 0 end) from {project.relation('high_value_buyers')}"
    )
    assert n > 0 and 0 < holdout < n
    [(merged,)] = project.query(
        f"select count(*) from {project.relation('purchases_with_user')} where user__geo_region is not null"
    )
    assert merged > 0

    suggested = project.query(
        f"select column_name, value, occurrences, value_rank from "
        f"{project.relation('suggested_values')} where model_name = 'stg_purchases'"
    )
    names = [r[0] for r in project.query(f"select product_name from {project.relation('stg_purchases')}")]
    counts = {n: names.count(n) for n in set(names) if n is not None}
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert sorted((r[3], r[1], r[2]) for r in suggested if r[0] == "product_name") == [
        (i, name, n) for i, (name, n) in enumerate(top, 1)
    ]

    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["audience", "preview", "viewed_not_bought", "--project-dir", str(project.root), "--json"],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout[out.stdout.index("{") :])  # stderr may hold a driver's warning (fakesnow's)
    assert report["size"] == len(expected) and report["parent_rows"] == len(users)
    assert [s["size"] for s in report["steps"]] == [sum(1 for u in users if recent.get(u, 0) >= 3), len(expected)]
    assert report["labels"] == ["user_id", "name", "email"] and len(report["members"]) == min(5, len(expected))
    out = runner.invoke(cli, ["schema", "--project-dir", str(project.root), "--mermaid"], catch_exceptions=False)
    assert out.exit_code == 0 and "stg_users ||--o{ stg_purchases" in out.output
    assert "stg_users }o..o{ stg_subscriptions" in out.output


def test_a_preview_of_a_warehouse_it_cannot_open_is_the_one_line_status_gives(built_example, tmp_path, capsys,
                                                                              monkeypatch):
    """A DuckDB file another process holds, or a profile setting DuckDB refuses: `audience preview` says so in the
    one line `status` gives (what is wrong, after the project and target), with its exit code; no traceback."""

    from helpers.cli import run_cli

    project = built_example("duckdb")
    project.release()  # this process lets go of the file (dbt keeps it open between invocations)
    args = ["--project-dir", str(project.root)]
    profiles = tmp_path / "refused"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text((project.root / "profiles.yml").read_text(encoding="utf-8")
                                           + "      settings: {no_such_setting: 1}\n", encoding="utf-8")
    refused = run_cli(capsys, monkeypatch, "audience", "preview", "viewed_not_bought", *args,
                      "--profiles-dir", str(profiles))
    code, out, err = refused
    assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot use the warehouse of {project.root} (target duckdb): ") and \
        "no_such_setting" in err
    assert refused == run_cli(capsys, monkeypatch, "status", *args, "--profiles-dir", str(profiles))
    project.release()
    database = project.root / "target" / "warehouse.duckdb"
    with duckdb_held(database) as holder:
        held = run_cli(capsys, monkeypatch, "audience", "preview", "viewed_not_bought", *args)
        status = run_cli(capsys, monkeypatch, "status", *args)
    code, out, err = held
    # the profile is at fault above (exit 2); a file held elsewhere is a failed run (exit 1), as in docs/cli.md
    assert (code, out) == (status[0], "") == (1, "") and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot use the warehouse of {project.root} (target duckdb): IO Error: ")
    assert f"(PID {holder.pid})" in err and err == status[2], err
