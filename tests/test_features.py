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

from conftest import ADAPTERS
from sql_lint import unknown_functions

AS_OF = datetime(2026, 1, 1)  # the example's `as_of` var default: sync_runner.generate.REFERENCE_TIME
PROJECT = Path(__file__).parent / "projects" / "features"
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
    ]


def test_conditions_are_pushed_into_one_group_by_per_input(focused):
    if focused.adapter == "snowflake":  # the focused build ran: lint what Snowflake ran
        assert focused.sql_log
        assert unknown_functions(focused.sql_log) == []
    compiled = (focused.root / "target" / "compiled" / "features_tests" / "models" / "features.sql").read_text()
    assert compiled.count("group by main_id") == 2  # events and profiles, whatever the where / windows
    assert "count(case when (kind = 'buy') and" in compiled


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
]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("feature_vars", "names", "message"), ERRORS)
def test_compile_errors_name_model_and_var(new_project, adapter, feature_vars, names, message, request):
    key = f"_features_errors_{adapter}"
    project = getattr(request.config, key, None)
    if project is None:
        project = new_project(adapter, name="features_errors", source=PROJECT)
        setattr(request.config, key, project)
    result = project.dbt("parse", check=False, vars={"feature_vars": feature_vars, "feature_names": names})
    assert not result.success
    text = str(result.exception)
    line = next(line.strip() for line in text.splitlines() if "dbt_studio.entity_features" in line)
    assert line.startswith("dbt_studio.entity_features in model 'features', ")
    assert message in line
