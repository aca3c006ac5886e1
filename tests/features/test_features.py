"""Entity features against an independent Python reference, on DuckDB and on Snowflake (fakesnow).

The plant-store example's `user_profile` (integration_tests/models/features) is compared feature by feature with
what plain Python computes from the staging rows and the id graph read back from the same warehouse, at the
example's fixed as_of. The focused project (tests/projects/features) pins the semantics on a handful of rows —
windows, first/last value, rows after as_of, people with no rows — and is made invalid through --vars to check
each compile-time error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from helpers import ADAPTERS
from helpers.sql_lint import unknown_functions

AS_OF = datetime(2026, 1, 1)  # the example's `as_of` var default: sync_runner.demo.generate.REFERENCE_TIME
PROJECT = Path(__file__).resolve().parents[1] / "projects" / "features"
EXAMPLE_FEATURES = ("n_active_days_total", "orders_completed_in_past_365_days", "first_seen_date",
                    "campaign_source_first_touch", "avg_session_length_in_sec_last_7_days", "lifetime_value",
                    "plants_owned", "coupon_purchases", "most_frequent_product", "days_since_last_purchase")


# -- the reference ---------------------------------------------------------------------------------------------

def normalized(id_type: str, value: str | None) -> str | None:
    """The documented default normalisation: emails lower(trim()), other id types trim(); blank is no id."""
    if value is None:
        return None
    v = value.strip().lower() if "email" in id_type else value.strip()
    return v or None


def as_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class Reference:
    """Rows of the example's staging models and id graph, mapped to main_id in Python."""

    def __init__(self, project) -> None:
        self.graph = {(t, v): m for m, t, v in project.query(
            f"select main_id, id_type, id_value from {project.relation('user_id_stitcher')}")}
        self.people = set(self.graph.values())

        def mapped(model: str, ids: tuple[str, ...], columns: str, ts_index: int) -> list[tuple]:
            out = []
            for row in project.query(f"select {', '.join(ids)}, {columns} from {project.relation(model)}"):
                main_id = next((self.graph.get((t, normalized(t, row[i]))) for i, t in enumerate(ids)
                                if self.graph.get((t, normalized(t, row[i])))), None)
                rest = row[len(ids):]
                if main_id is not None and as_datetime(rest[ts_index]) <= AS_OF:
                    out.append((main_id, *rest))
            return out

        self.identifies = mapped("stg_identifies", ("anonymous_id", "user_id", "email"),
                                 "timestamp, context_campaign_source", 0)
        self.tracks = mapped("stg_tracks", ("anonymous_id", "user_id"), "timestamp, event, session_id", 0)
        self.purchases = mapped("stg_purchases", ("user_id",),
                                "purchased_at, plant_id, product_name, price, used_coupon", 0)

    def features(self) -> dict[str, dict[str, object]]:
        out = {p: {"n_active_days_total": 0, "orders_completed_in_past_365_days": 0, "first_seen_date": None,
                   "campaign_source_first_touch": None, "avg_session_length_in_sec_last_7_days": None,
                   "lifetime_value": Decimal(0), "plants_owned": 0, "coupon_purchases": 0,
                   "most_frequent_product": None, "days_since_last_purchase": None} for p in self.people}
        days, first_seen, sessions = defaultdict(set), {}, defaultdict(list)
        for main_id, ts, event, session_id in self.tracks:
            ts = as_datetime(ts)
            days[main_id].add(ts.date())
            first_seen[main_id] = min(first_seen.get(main_id, ts), ts)
            if event == "order_completed" and ts >= AS_OF - timedelta(days=365):
                out[main_id]["orders_completed_in_past_365_days"] += 1
            sessions[(main_id, session_id)].append(ts)
        for main_id, d in days.items():
            out[main_id]["n_active_days_total"] = len(d)
        lengths = defaultdict(list)
        for (main_id, _), stamps in sessions.items():
            if min(stamps) >= AS_OF - timedelta(days=7):
                lengths[main_id].append((max(stamps) - min(stamps)).total_seconds())
        for main_id, values in lengths.items():
            out[main_id]["avg_session_length_in_sec_last_7_days"] = sum(values) / len(values)
        touches = defaultdict(list)
        for main_id, ts, source in self.identifies:
            ts = as_datetime(ts)
            first_seen[main_id] = min(first_seen.get(main_id, ts), ts)
            if source:
                touches[main_id].append((ts, source))
        for main_id, ts in first_seen.items():
            out[main_id]["first_seen_date"] = ts.date()
        for main_id, values in touches.items():
            out[main_id]["campaign_source_first_touch"] = min(values)[1]
        bought = defaultdict(list)
        for row in self.purchases:
            bought[row[0]].append(row[1:])
        for main_id, rows in bought.items():
            f = out[main_id]
            f["lifetime_value"] = sum(Decimal(str(price)) for *_, price, _ in rows)
            f["plants_owned"] = len({plant for _, plant, *_ in rows})
            f["coupon_purchases"] = sum(1 for *_, coupon in rows if coupon)
            counts = Counter(name for _, _, name, *_ in rows)
            f["most_frequent_product"] = min(counts, key=lambda name: (-counts[name], name))
            f["days_since_last_purchase"] = (AS_OF.date() - max(as_datetime(r[0]) for r in rows).date()).days
        return out


# -- the example --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=ADAPTERS)
def example(request, built_example):
    project = built_example(request.param)
    rows = project.query(f"select main_id, {', '.join(EXAMPLE_FEATURES)}, valid_at "
                         f"from {project.relation('user_profile')}")
    built = {r[0]: dict(zip((*EXAMPLE_FEATURES, "valid_at"), r[1:], strict=True)) for r in rows}
    return project, built, Reference(project)


def same(feature: str, got, want) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if feature == "avg_session_length_in_sec_last_7_days":
        return abs(float(got) - want) < 1e-6
    if feature == "lifetime_value":  # fakesnow sums decimals as doubles: compare in cents
        return round(Decimal(str(got)), 2) == want
    if feature == "first_seen_date":
        return (got if isinstance(got, date) and not isinstance(got, datetime) else as_datetime(got).date()) == want
    return got == want


def test_one_row_per_person_of_the_id_graph(example):
    _, built, ref = example
    assert set(built) == ref.people
    assert {as_datetime(f["valid_at"]) for f in built.values()} == {AS_OF}


@pytest.mark.parametrize("feature", EXAMPLE_FEATURES)
def test_example_feature_matches_python(example, feature):
    _, built, ref = example
    want = ref.features()
    wrong = {p: (built[p][feature], want[p][feature]) for p in ref.people
             if not same(feature, built[p][feature], want[p][feature])}
    assert not wrong, f"{len(wrong)} of {len(ref.people)} people differ, e.g. {list(wrong.items())[:3]}"
    assert any(want[p][feature] not in (None, 0) for p in ref.people), "the data never exercises this feature"


def test_people_without_rows_get_zero_counts_and_null_values(example):
    _, built, ref = example
    buyers = {row[0] for row in ref.purchases}
    tracked = {row[0] for row in ref.tracks}
    no_purchases, no_tracks = ref.people - buyers, ref.people - tracked
    assert no_purchases and no_tracks, "the seeds should hold people without purchases and without tracks"
    for p in no_purchases:
        f = built[p]
        assert (f["plants_owned"], f["coupon_purchases"], round(Decimal(str(f["lifetime_value"])), 2)) == (0, 0, 0)
        assert f["most_frequent_product"] is None and f["days_since_last_purchase"] is None
    for p in no_tracks:
        assert built[p]["n_active_days_total"] == 0 and built[p]["orders_completed_in_past_365_days"] == 0
        assert built[p]["avg_session_length_in_sec_last_7_days"] is None


def test_master_models_key_every_transaction_and_event_by_main_id(example):
    project, built, ref = example
    [(n_tx,)] = project.query(f"select count(*) from {project.relation('transactions')}")
    [(n_ev,)] = project.query(f"select count(*) from {project.relation('events')}")
    assert n_tx == len(ref.purchases) and n_ev == len(ref.tracks)
    [(customers, distinct)] = project.query(f"select count(*), count(distinct main_id) "
                                            f"from {project.relation('customers')}")
    assert customers == distinct == len(built)


# -- the focused project ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=ADAPTERS)
def focused(request, new_project):
    project = new_project(request.param, name="features", source=PROJECT)
    project.dbt("build")
    return project


def test_focused_semantics(focused):
    rows = focused.query(f"select main_id, n_events, n_buys_7d, spend, spend_7d, first_kind, last_kind, top_kind, "
                         f"plan, avg_spend from {focused.relation('features')} order by main_id")
    got = [(r[0], r[1], r[2], None if r[3] is None else round(Decimal(str(r[3])), 2),
            None if r[4] is None else round(Decimal(str(r[4])), 2), *r[5:9],
            None if r[9] is None else round(float(r[9]), 4)) for r in rows]
    assert got == [
        # u1 and ' Ann@Mail.com ' are one person; the 2024 row is outside 7 days but counts in totals
        ("A", 4, 1, Decimal("115.00"), Decimal("10.50"), "buy", "buy", "buy", "gold", 28.75),
        # the 2026-02-01 row is after as_of: ignored
        ("B", 2, 0, None, None, "view", "view", "view", "free", None),
        # no rows in any input: 0 for counts, null for everything else
        ("C", 0, 0, None, None, None, None, None, None, None),
        ("D", 0, 0, None, None, None, None, None, None, None),
        ("E", 0, 0, None, None, None, None, None, None, None),
    ]


# -- defaults whatever the select, and identifiers (the focused project's customer_360) ---------------------------

def customer_360_reference(project) -> dict[str, dict[str, object]]:
    """customer_360's vars computed in Python from the seeds as the warehouse holds them.

    Every var is its select evaluated over the person's rows that meet its where / window (rows after as_of
    removed first), with SQL's aggregate semantics — so a person whose rows the filters all remove gets exactly
    what a person with no rows gets. An explicit `default` replaces no matching row and a NULL result.
    """
    graph = project.query(f"select main_id, id_type, id_value, first_seen_at, last_seen_at "
                          f"from {project.relation('id_graph')}")
    lookup = {(t, v): m for m, t, v, *_ in graph}
    people = {m for m, *_ in graph}

    def owner(user_id, email):
        return next((lookup[(t, normalized(t, v))] for t, v in (("user_id", user_id), ("email", email))
                     if (t, normalized(t, v)) in lookup), None)

    raw = project.query(f"select user_id, email, kind, amount, session_id, ts from {project.relation('visits')}")
    visits = [(owner(u, e), e, kind, amount, session, as_datetime(ts)) for u, e, kind, amount, session, ts in raw
              if owner(u, e) is not None and as_datetime(ts) <= AS_OF]
    events = project.query(f"select email, ts from {project.relation('events')}")

    def total(rows):
        amounts = [Decimal(str(r[3])) for r in rows if r[3] is not None]
        return sum(amounts) if amounts else None

    out: dict[str, dict[str, object]] = {}
    for p in people:
        rows = [r for r in visits if r[0] == p]
        window = [r for r in rows if r[5] >= AS_OF - timedelta(days=30)]
        views = [r for r in rows if r[2] == "view"]
        buys = [r for r in rows if r[2] == "buy"]
        amounts = [Decimal(str(r[3])) for r in rows if r[3] is not None]
        out[p] = {
            "n_visits": len(rows),
            "n_emails": len({r[1] for r in rows if r[1] is not None}),
            "spend_30d": total(window) if total(window) is not None else Decimal(0),
            "repeat_views": len(views) - len({r[4] for r in views if r[4] is not None}),
            "spend_30d_or_minus": total(window) if total(window) is not None else Decimal(-1),
            "buys_or_minus": len(buys) if buys else -1,
            "max_amount_plus": (max(amounts) if amounts else Decimal(0)) + 1,
            "spend_per_buy": None if total(buys) is None else float(total(buys)) / len(buys),
        }

    # identifiers: ids first seen after as_of did not exist yet; most_frequent counts rows of both inputs up to as_of
    ids = [(m, t, v, first, last) for m, t, v, first, last in graph if first is None or as_datetime(first) <= AS_OF]
    seen = Counter()
    for email, ts in [(r[1], r[5]) for r in raw] + events:
        key = ("email", normalized("email", email))
        if key in lookup and as_datetime(ts) <= AS_OF:
            seen[(lookup[key], *key)] += 1

    def newest(at):  # latest first, no time last
        return (at is None, -as_datetime(at).timestamp() if at is not None else 0)

    def pick(p, id_type, how):
        candidates = [i for i in ids if i[0] == p and i[1] == id_type]
        keys = {
            "most_recent": lambda i: (*newest(i[4]), i[2]),
            "first_seen": lambda i: (i[3] is None, as_datetime(i[3]) if i[3] is not None else AS_OF, i[2]),
            "most_frequent": lambda i: (-seen[(p, id_type, i[2])], *newest(i[4]), i[2]),
        }
        return min(candidates, key=keys[how])[2] if candidates else None

    for p, f in out.items():
        f["email"] = pick(p, "email", "most_recent")
        f["email_first"] = pick(p, "email", "first_seen")
        f["email_frequent"] = pick(p, "email", "most_frequent")
        f["phone"] = pick(p, "phone", "most_recent") or "none"
        f["contact"] = f["email"] if f["email"] is not None else f["phone"]
    return out


CUSTOMER_360 = ("email", "email_first", "email_frequent", "phone", "n_visits", "n_emails", "spend_30d",
                "repeat_views", "spend_30d_or_minus", "buys_or_minus", "max_amount_plus", "spend_per_buy", "contact")


def comparable(value):
    if isinstance(value, float) or (isinstance(value, Decimal) and value != value.to_integral_value()):
        return round(float(value), 6)
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return int(value)
    return value


def test_defaults_and_identifiers_match_python(focused):
    rows = focused.query(f"select main_id, {', '.join(CUSTOMER_360)} from {focused.relation('customer_360')}")
    got = {r[0]: {k: comparable(v) for k, v in zip(CUSTOMER_360, r[1:], strict=True)} for r in rows}
    want = {p: {k: comparable(v) for k, v in f.items()} for p, f in customer_360_reference(focused).items()}
    assert {p: {k: want[p][k] for k in CUSTOMER_360} for p in want} == got
    # the seeds exercise each case: rows the as_of / window / where remove, and people with no rows at all
    assert got["B"]["buys_or_minus"] == -1 and got["B"]["n_visits"] > 0  # B's only buy is after as_of
    assert got["D"]["spend_30d"] == 0 and got["D"]["n_visits"] > 0  # D's rows are all outside the 30 days
    assert got["C"]["spend_30d"] == 0 and got["C"]["max_amount_plus"] == 1 and got["C"]["repeat_views"] == 0
    assert len({got["A"]["email"], got["A"]["email_first"], got["A"]["email_frequent"]}) == 3


def test_conditions_are_pushed_into_one_group_by_per_input(focused):
    if focused.adapter == "snowflake":  # the focused build ran: lint what Snowflake ran
        assert focused.sql_log
        assert unknown_functions(focused.sql_log) == []
    compiled = (focused.root / "target" / "compiled" / "features_tests" / "models" / "features.sql").read_text()
    assert compiled.count("group by main_id") == 2  # events and profiles, whatever the where / windows
    assert "count(case when (kind = 'buy') and" in compiled


# -- grouped inputs (the focused project's sessions_360) ------------------------------------------------------------

def sessions_reference(project) -> dict[str, dict[str, object]]:
    """sessions_360 in Python: visits up to as_of grouped per person and session_id (None is a group, as in SQL's
    GROUP BY) and per person and kind, then each var over those groups."""
    lookup = {(t, v): m for m, t, v in project.query(f"select main_id, id_type, id_value "
                                                      f"from {project.relation('id_graph')}")}
    people = set(lookup.values())
    sessions: dict[tuple, list] = defaultdict(list)
    kinds: Counter = Counter()
    for user_id, email, kind, amount, session, ts in project.query(
            f"select user_id, email, kind, amount, session_id, ts from {project.relation('visits')}"):
        owner = next((lookup[(t, normalized(t, v))] for t, v in (("user_id", user_id), ("email", email))
                      if (t, normalized(t, v)) in lookup), None)
        if owner is not None and as_datetime(ts) <= AS_OF:
            sessions[(owner, session)].append((as_datetime(ts), amount))
            kinds[(owner, kind)] += 1
    out = {}
    for p in people:
        mine = [rows for (owner, _), rows in sessions.items() if owner == p]
        started = [min(ts for ts, _ in rows) for rows in mine]
        spends = [sum(Decimal(str(a)) for _, a in rows if a is not None) for rows in mine
                  if any(a is not None for _, a in rows)]
        counts = {kind: n for (owner, kind), n in kinds.items() if owner == p}
        out[p] = {
            "n_sessions": len(mine),
            "n_sessions_30d": sum(1 for t in started if t >= AS_OF - timedelta(days=30)),
            "multi_row_sessions": sum(1 for rows in mine if len(rows) > 1),
            "longest_session_seconds": max((int((max(t for t, _ in rows) - min(t for t, _ in rows)).total_seconds())
                                            for rows in mine), default=None),
            "best_session_spend": max(spends, default=Decimal(0)),
            "top_kind": min(counts, key=lambda k: (-counts[k], k is None, k)) if counts else None,
        }
    return out


SESSIONS_360 = ("n_sessions", "n_sessions_30d", "multi_row_sessions", "longest_session_seconds", "best_session_spend",
                "top_kind")


def test_grouped_inputs_aggregate_one_row_per_person_and_group(focused):
    rows = focused.query(f"select main_id, {', '.join(SESSIONS_360)} from {focused.relation('sessions_360')}")
    got = {r[0]: {k: comparable(v) for k, v in zip(SESSIONS_360, r[1:], strict=True)} for r in rows}
    want = {p: {k: comparable(v) for k, v in f.items()} for p, f in sessions_reference(focused).items()}
    assert got == want
    # the seeds exercise each case: A's rows without a session_id are one session, B's s4 has a row after as_of
    # (left out, so s4 is the two rows before it), C has no visits
    assert got["A"]["n_sessions"] == 3 and got["A"]["multi_row_sessions"] == 2
    assert got["B"]["longest_session_seconds"] == 600
    assert got["C"] == {"n_sessions": 0, "n_sessions_30d": 0, "multi_row_sessions": 0,
                        "longest_session_seconds": None, "best_session_spend": 0, "top_kind": None}
    compiled = (focused.root / "target" / "compiled" / "features_tests" / "models" / "sessions_360.sql").read_text()
    assert "group by main_id, session_id" in compiled and "partition by main_id, session_id" not in compiled


ERRORS = [
    pytest.param([{"name": "x", "from": "orders", "select": "count(*)"}], ["x"],
                 "var 'x': `from` names unknown input 'orders'", id="unknown-input"),
    pytest.param([{"name": "x", "select": "y + 1"}, {"name": "y", "from": "events", "select": "count(*)"}], ["x"],
                 "var 'x': refers to var 'y', which is defined later", id="later-var"),
    pytest.param([{"name": "x", "select": "n_orders + 1"}], ["x"],
                 "var 'x': refers to unknown var 'n_orders'", id="unknown-var"),
    pytest.param([{"name": "x", "from": "events", "select": "count(*)"},
                  {"name": "x", "from": "events", "select": "sum(amount)"}], ["x"],
                 "var 'x': duplicate name", id="duplicate"),
    pytest.param([{"name": "x", "from": "profiles", "select": "count(*)", "window_days": 30}], ["x"],
                 "var 'x': `window_days` needs a timestamp, and input 'profiles' has none", id="window-no-timestamp"),
    pytest.param([{"name": "n", "from": "events", "select": "count(*)"},
                  {"name": "x", "from": "events", "select": "max(n)"}], ["x"],
                 "var 'x': refers to entity var 'n', which only derived vars can use", id="entity-var-in-entity-var"),
    pytest.param([{"name": "k", "kind": "input", "from": "profiles", "select": "upper(plan)"},
                  {"name": "x", "from": "events", "select": "max(k)"}], ["x"],
                 "var 'x': refers to input var 'k' of input 'profiles', not of 'events'", id="other-input-var"),
    pytest.param([{"name": "x", "from": "events", "select": "count(*)"}], ["x", "nope"],
                 "feature 'nope': names unknown var 'nope'", id="unknown-feature"),
    pytest.param([{"name": "x", "from": "events", "select": "count(*)", "window_day": 30}], ["x"],
                 "var 'x': unknown key 'window_day' (did you mean 'window_days'?)", id="unknown-key"),
    pytest.param([{"name": "x", "from": "events", "select": "count(*)", "partition_by": "kind"}], ["x"],
                 "var 'x': `partition_by` only applies to input vars", id="key-of-another-kind"),
    pytest.param([{"name": "x", "form": "events", "select": "count(*)"}], ["x"],
                 "var 'x': unknown key 'form' (did you mean 'from'?)", id="unknown-key-derived"),
    pytest.param([{"name": "x", "id_type": "email", "pick": "most_recnt"}], ["x"],
                 "var 'x': unknown pick 'most_recnt' (did you mean 'most_recent'?)", id="unknown-pick"),
    pytest.param([{"name": "x", "id_type": "phone", "pick": "most_frequent"}], ["x"],
                 "var 'x': pick 'most_frequent' counts the rows of the inputs with id type 'phone', and no input "
                 "has it", id="most-frequent-without-input"),
]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("feature_vars", "names", "message"), ERRORS)
def test_compile_errors_name_model_and_var(new_project, adapter, feature_vars, names, message, request):
    line = compile_error(errors_project(new_project, adapter, request),
                         {"feature_vars": feature_vars, "feature_names": names})
    assert line.startswith("dbt_studio.entity_features in model 'features', ")
    assert message in line


GROUPED = {"from": "events", "group_by": ["kind"], "columns": {"n": "count(*)"}}
GROUPED_ERRORS = [
    pytest.param({**GROUPED, "from": "orders"},
                 "input 'g': `from` names unknown input 'orders' (a grouped input reads an input listed before it: "
                 "events, profiles)", id="unknown-source"),
    pytest.param({**GROUPED, "relation": "x"}, "input 'g': `relation` does not apply to a grouped input",
                 id="relation"),
    pytest.param({**GROUPED, "group_by": ["lower(kind)"]},
                 "input 'g': `group_by` must be a list of column names of input 'events'", id="group-by-sql"),
    pytest.param({**GROUPED, "group_by": []},
                 "input 'g': `group_by` must be a list of column names of input 'events'", id="group-by-empty"),
    pytest.param({"from": "events", "group_by": ["kind"]}, "input 'g': `columns` must be a mapping",
                 id="no-columns"),
    pytest.param({**GROUPED, "columns": {"kind": "max(kind)"}},
                 "input 'g', column 'kind': the name is taken by a grouping column", id="column-name-taken"),
    pytest.param({**GROUPED, "timestamp": "strated_at", "columns": {"started_at": "min(ts)"}},
                 "input 'g': `timestamp` 'strated_at' is not a column of the grouped rows (did you mean "
                 "'started_at'?)", id="timestamp-not-a-column"),
    pytest.param({**GROUPED, "groupby": ["kind"]}, "input 'g': unknown key 'groupby' (did you mean 'group_by'?)",
                 id="unknown-key"),
]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("grouped", "message"), GROUPED_ERRORS)
def test_grouped_input_mistakes_are_compile_errors(new_project, adapter, grouped, message, request):
    line = compile_error(errors_project(new_project, adapter, request), {"extra_inputs": {"g": grouped}})
    assert line.startswith("dbt_studio.entity_features in model 'features', ")
    assert message in line


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_unknown_input_key_is_an_error(new_project, adapter, request):
    line = compile_error(errors_project(new_project, adapter, request), {"events_input": {"timestmap": "ts"}})
    assert line == ("dbt_studio.entity_features in model 'features', input 'events': unknown key 'timestmap' "
                    "(did you mean 'timestamp'?)")


def test_as_of_falls_back_to_the_dbt_studio_as_of_setting(focused):
    """The one as_of rule of features and audiences: the argument, else the `dbt_studio_as_of` var, else now."""
    compiled = focused.root / "target" / "compiled" / "features_tests" / "models" / "features.sql"
    for variables, expected in (({"as_of": "2025-12-20"}, "cast('2025-12-20' as "),
                                ({"as_of": None, "dbt_studio_as_of": "2025-12-26"}, "cast('2025-12-26' as "),
                                ({"as_of": None}, None),  # the adapter's current timestamp, no date literal
                                ({}, "cast('2026-01-01' as ")):  # (leaves the compiled model as the build had it)
        focused.dbt("compile", "-s", "features", vars=variables)
        sql = compiled.read_text(encoding="utf-8").lower()
        valid_at = next(line.strip() for line in sql.splitlines() if line.strip().endswith(" as valid_at"))
        assert valid_at.startswith(expected) if expected else "'20" not in valid_at, (variables, valid_at)


def errors_project(new_project, adapter, request):
    """One copy of the focused project per adapter for the compile-error tests (they only parse)."""
    key = f"_features_errors_{adapter}"
    project = getattr(request.config, key, None)
    if project is None:
        project = new_project(adapter, name="features_errors", source=PROJECT)
        setattr(request.config, key, project)
    return project


def compile_error(project, variables) -> str:
    """The line of `dbt parse`'s error that names dbt_studio.entity_features."""
    result = project.dbt("parse", check=False, vars=variables)
    assert not result.success
    return next(line.strip() for line in str(result.exception).splitlines() if "dbt_studio.entity_features" in line)
