"""Tests of the messy plant-store generator: determinism, shapes, and that every kind of mess is really there.

The mess checks assert fractions within loose ranges: they guard against a knob silently going to zero (or
exploding), not against the exact numbers, which may change when the generator is tuned.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_runner.demo.generate import REFERENCE_TIME, TABLES, generate

SEEDS_DIR = Path(__file__).resolve().parents[2] / "integration_tests" / "seeds"
SEED_ARGS = {"users": 60, "seed": 7, "fmt": "csv", "chunk_users": 60, "prefix": "raw_"}
JUNK_IDS = ("", "unknown", "null")
JUNK_EMAILS = ("", "unknown", "null", "test@example.com")

COLUMNS = {
    "users": ["user_id", "name", "email", "geo_region", "age"],
    "identifies": ["anonymous_id", "user_id", "email", "timestamp", "context_campaign_source"],
    "tracks": ["anonymous_id", "user_id", "event", "session_id", "timestamp"],
    "purchases": [
        "purchase_id",
        "user_id",
        "plant_id",
        "product_name",
        "price",
        "used_coupon",
        "pdp_url",
        "purchased_at",
    ],
    "product_viewed": ["user_id", "product_id", "url", "timestamp"],
    "subscriptions": ["product_id", "name", "delivery", "price"],
    "memberships": ["user_id", "product_id"],
}
TIMESTAMP_COLUMNS = {
    "identifies": "timestamp",
    "tracks": "timestamp",
    "purchases": "purchased_at",
    "product_viewed": "timestamp",
}


def read_csv_exact(path: Path, schema: pa.Schema) -> pa.Table:
    """Read a generated CSV so that '' and NULL stay distinct (quoted "" is '', an empty field is NULL)."""
    options = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False)
    return pacsv.read_csv(path, convert_options=options)


@pytest.fixture(scope="module")
def run2k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("gen2k")
    return out, generate(out, users=2_000, seed=3, chunk_users=700)


@pytest.fixture(scope="module")
def db2k(run2k: tuple[Path, dict[str, int]]) -> Callable[[str], list[tuple]]:
    out, _ = run2k
    con = duckdb.connect()
    for table in TABLES:
        con.execute(f"create view {table} as select * from read_parquet('{(out / f'{table}.parquet').as_posix()}')")
    # Rows that tie a real anonymous id to a real user id; junk ids are exactly what must not be trusted.
    con.execute(
        """
        create view links as
        select anonymous_id, user_id, timestamp from identifies
        union all select anonymous_id, user_id, timestamp from tracks
        """
    )
    con.execute(
        """
        create view real_links as
        select * from links where length(anonymous_id) = 36 and user_id in (select user_id from users)
        """
    )
    return lambda sql: con.execute(sql).fetchall()


def one(db: Callable[[str], list[tuple]], sql: str) -> object:
    return db(sql)[0][0]


# ------------------------------------------------------------------------------------------------ determinism


def test_same_arguments_write_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate(tmp_path / name, users=300, seed=11, fmt="csv", chunk_users=120)
        generate(tmp_path / f"{name}_pq", users=300, seed=11, chunk_users=120)
    for table in TABLES:
        assert (tmp_path / "a" / f"{table}.csv").read_bytes() == (tmp_path / "b" / f"{table}.csv").read_bytes()
        first = pq.read_table(tmp_path / "a_pq" / f"{table}.parquet")
        assert first.equals(pq.read_table(tmp_path / "b_pq" / f"{table}.parquet")), table


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", users=100, seed=1, fmt="csv")
    generate(tmp_path / "b", users=100, seed=2, fmt="csv")
    assert (tmp_path / "a" / "tracks.csv").read_bytes() != (tmp_path / "b" / "tracks.csv").read_bytes()


def test_csv_and_parquet_hold_the_same_data(tmp_path: Path) -> None:
    """Formats differ only in encoding (timestamps are whole seconds), and CSV keeps '' apart from NULL."""
    generate(tmp_path / "csv", users=200, seed=5, fmt="csv")
    generate(tmp_path / "pq", users=200, seed=5)
    for table in TABLES:
        parquet = pq.read_table(tmp_path / "pq" / f"{table}.parquet")
        if table in TIMESTAMP_COLUMNS:
            col = TIMESTAMP_COLUMNS[table]
            i = parquet.schema.get_field_index(col)
            parquet = parquet.set_column(i, col, parquet[col].cast(pa.timestamp("s")))
        csv = read_csv_exact(tmp_path / "csv" / f"{table}.csv", parquet.schema)
        assert csv.equals(parquet), table
    tracks = read_csv_exact(tmp_path / "csv" / "tracks.csv", pq.read_schema(tmp_path / "pq" / "tracks.parquet"))
    assert "" in tracks["anonymous_id"].to_pylist()
    assert tracks["user_id"].null_count > 0


# ------------------------------------------------------------------------------------------------ shape


def test_counts_match_files(run2k: tuple[Path, dict[str, int]]) -> None:
    out, counts = run2k
    assert list(counts) == list(TABLES)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TABLES)
    for table, rows in counts.items():
        assert pq.read_metadata(out / f"{table}.parquet").num_rows == rows
    assert counts["users"] == 2_000
    assert counts["subscriptions"] == 6
    # The rates are per-user means: loose bounds, the data is heavy-tailed by design.
    assert 16 * 2_000 < counts["tracks"] < 24 * 2_000
    assert 1.5 * 2_000 < counts["purchases"] < 2.5 * 2_000
    assert 4 * 2_000 < counts["product_viewed"] < 6 * 2_000


def test_schemas(run2k: tuple[Path, dict[str, int]]) -> None:
    out, _ = run2k
    for table in TABLES:
        schema = pq.read_schema(out / f"{table}.parquet")
        assert schema.names == COLUMNS[table], table
        for field in schema:
            if field.name in ("timestamp", "purchased_at"):
                assert field.type == pa.timestamp("us"), (table, field.name)  # naive: no time zone
            elif field.name == "age":
                assert pa.types.is_integer(field.type)
            elif field.name == "price":
                assert field.type == pa.float64()
            elif field.name == "used_coupon":
                assert field.type == pa.bool_()
            else:
                assert field.type == pa.string(), (table, field.name)


def test_csv_formats(tmp_path: Path) -> None:
    counts = generate(tmp_path, users=50, seed=1, fmt="csv", prefix="raw_")
    for table in TABLES:
        lines = (tmp_path / f"raw_{table}.csv").read_text().splitlines()
        assert lines[0].replace('"', "").split(",") == COLUMNS[table]
        assert len(lines) - 1 == counts[table]
    purchase = (tmp_path / "raw_purchases.csv").read_text().splitlines()[1].split(",")
    assert purchase[5] in ("true", "false")
    assert len(purchase[7]) == len("2025-01-01 00:00:00") and purchase[7][10] == " "


def test_ids_are_unique(db2k: Callable[[str], list[tuple]]) -> None:
    assert db2k("select count(*), count(distinct user_id), min(user_id), max(user_id) from users") == [
        (2000, 2000, "u0000001", "u0002000")
    ]
    assert one(db2k, "select count(*) - count(distinct purchase_id) from purchases") == 0
    assert one(db2k, "select count(*) from purchases where user_id not in (select user_id from users)") == 0


def test_chunking_writes_every_user_once(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    counts = generate(tmp_path, users=250, seed=1, chunk_users=100, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(100, 250), (200, 250), (250, 250)]
    users = pq.read_table(tmp_path / "users.parquet")
    ids = users["user_id"].to_pylist()
    assert counts["users"] == 250 and ids == [f"u{i:07d}" for i in range(1, 251)]
    purchase_ids = pq.read_table(tmp_path / "purchases.parquet")["purchase_id"].to_pylist()
    assert len(set(purchase_ids)) == len(purchase_ids) == counts["purchases"]
    assert pq.ParquetFile(tmp_path / "tracks.parquet").metadata.num_row_groups == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": 0},
        {"users": -3},
        {"users": 2.5},
        {"fmt": "json"},
        {"chunk_users": 0},
        {"seed": -1},
        {"events_per_user": -1.0},
        {"purchases_per_user": float("nan")},
        {"views_per_user": float("inf")},
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError) as info:
        generate(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())  # nothing written for rejected arguments


@settings(max_examples=25, deadline=None)
@given(
    users=st.integers(1, 40),
    chunk_users=st.integers(1, 15),
    rate=st.floats(0, 30),
    fmt=st.sampled_from(["parquet", "csv"]),
)
def test_any_small_size_works(users: int, chunk_users: int, rate: float, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as out:
        counts = generate(
            out,
            users=users,
            chunk_users=chunk_users,
            fmt=fmt,
            events_per_user=rate,
            purchases_per_user=rate / 10,
            views_per_user=rate / 4,
        )
        assert counts["users"] == users
        if fmt == "parquet":
            tracks = pq.read_table(Path(out) / "tracks.parquet")
            assert tracks.num_rows == counts["tracks"]
            assert pc.max(tracks["timestamp"]).as_py() < REFERENCE_TIME


def test_zero_rates_still_work(tmp_path: Path) -> None:
    counts = generate(tmp_path, users=30, events_per_user=0, purchases_per_user=0, views_per_user=0)
    assert counts["purchases"] == 0 and counts["product_viewed"] == 0
    assert counts["tracks"] > 0  # every device is seen at least once


# ------------------------------------------------------------------------------------------------ the mess


def test_timestamps_spread_over_two_years(db2k: Callable[[str], list[tuple]]) -> None:
    ref = REFERENCE_TIME
    for table, col in TIMESTAMP_COLUMNS.items():
        lo, hi = db2k(f"select min({col}), max({col}) from {table}")[0]
        assert ref - timedelta(days=740) < lo < ref - timedelta(days=500), table
        assert ref - timedelta(days=2) < hi < ref, table
    last7, last30 = db2k(
        f"""select avg((timestamp >= timestamp '{ref - timedelta(days=7)}')::int),
                   avg((timestamp >= timestamp '{ref - timedelta(days=30)}')::int) from tracks"""
    )[0]
    assert 0.01 < last7 < 0.15 and 0.05 < last30 < 0.35


def test_sessions(db2k: Callable[[str], list[tuple]]) -> None:
    events = {r[0] for r in db2k("select distinct event from tracks")}
    assert events == {"order_completed", "product_viewed", "page_viewed", "added_to_cart", "signed_up"}
    longest, multi = db2k(
        """select max(d), avg((n >= 3)::int) from (
               select session_id, epoch(max(timestamp) - min(timestamp)) as d, count(*) as n
               from tracks group by session_id)"""
    )[0]
    assert 1200 < longest <= 3600  # seconds to an hour
    assert 0.1 < multi < 0.9


def test_anonymous_history_before_signup(db2k: Callable[[str], list[tuple]]) -> None:
    share = one(
        db2k,
        """
        with first_identify as (
            select user_id, min(timestamp) as at from identifies
            where user_id in (select user_id from users) group by user_id
        ), devices as (select distinct anonymous_id, user_id from real_links)
        select avg((exists (
            select 1 from links l join devices d using (anonymous_id)
            where d.user_id = f.user_id and l.user_id is null and l.timestamp < f.at))::int)
        from first_identify f
        """,
    )
    assert share > 0.8
    anonymous = one(db2k, "select avg((user_id is null)::int) from tracks")
    assert 0.15 < anonymous < 0.6


def test_several_devices_per_user(db2k: Callable[[str], list[tuple]]) -> None:
    per_user = dict(
        db2k(
            """select n, count(*) from (
                   select user_id, count(distinct anonymous_id) as n from real_links group by user_id)
               group by n"""
        )
    )
    assert set(per_user) == {1, 2, 3, 4}
    total = sum(per_user.values())
    assert 0.45 < per_user[1] / total < 0.75  # skewed toward one or two
    assert 0.01 < per_user[4] / total < 0.1
    # A device belongs to one person: no real anonymous_id links two users.
    shared_devices = "select anonymous_id from real_links group by 1 having count(distinct user_id) > 1"
    assert one(db2k, f"select count(*) from ({shared_devices})") == 0


def test_shared_family_emails(db2k: Callable[[str], list[tuple]]) -> None:
    shared = "select email from users group by 1 having count(*) > 1"
    sharing = one(db2k, f"select count(*) from users where email in ({shared})")
    assert 0.01 * 2_000 <= sharing <= 0.04 * 2_000
    # Both members of a family send their shared email with their own user_id.
    both = one(
        db2k,
        """select count(*) from (
               select lower(trim(email)) from identifies where user_id in (select user_id from users)
               group by 1 having count(distinct user_id) > 1)""",
    )
    assert both >= sharing / 2 * 0.8


def test_mixed_case_emails(db2k: Callable[[str], list[tuple]]) -> None:
    junk = ", ".join(f"'{v}'" for v in JUNK_EMAILS)
    messy, total = db2k(
        f"""select count(*) filter (where email <> lower(trim(email))), count(*)
            from identifies where email is not null and email not in ({junk})"""
    )[0]
    assert 0.05 < messy / total < 0.25
    assert one(db2k, "select count(*) from identifies where email like ' %' and email like '% '") > 0
    assert one(db2k, "select count(*) from identifies where email = upper(email) and email like '%@%'") > 0
    # Every messy email is a real address once trimmed and lower-cased.
    orphans = one(
        db2k,
        f"""select count(*) from identifies where email is not null and email not in ({junk})
            and lower(trim(email)) not in (select email from users)""",
    )
    assert orphans == 0


@pytest.mark.parametrize(
    ("table", "column", "values"),
    [
        ("identifies", "anonymous_id", JUNK_IDS),
        ("identifies", "user_id", JUNK_IDS),
        ("identifies", "email", JUNK_EMAILS),
        ("tracks", "anonymous_id", JUNK_IDS),
        ("tracks", "user_id", JUNK_IDS),
    ],
)
def test_junk_ids_are_hubs(
    db2k: Callable[[str], list[tuple]], table: str, column: str, values: tuple[str, ...]
) -> None:
    listed = ", ".join(f"'{v}'" for v in values)
    found = dict(db2k(f"select {column}, count(*) from {table} where {column} in ({listed}) group by 1"))
    assert set(found) == set(values)
    share = sum(found.values()) / one(db2k, f"select count(*) from {table}")
    assert 0.005 < share < 0.06
    other = "user_id" if column != "user_id" else "anonymous_id"
    spread = one(
        db2k,
        f"""select min(n) from (select {column}, count(distinct {other}) as n from {table}
            where {column} in ({listed}) group by 1)""",
    )
    assert spread >= 10  # attached to many different people: a stitcher must not follow them


def test_users_without_activity(db2k: Callable[[str], list[tuple]]) -> None:
    linked = "select user_id from links where user_id is not null"
    never = one(db2k, f"select count(*) from users where user_id not in ({linked})")
    assert 0.04 * 2_000 < never < 0.15 * 2_000
    for table, lo, hi in (("purchases", 0.2, 0.6), ("product_viewed", 0.1, 0.5), ("memberships", 0.55, 0.9)):
        without = one(db2k, f"select avg((user_id not in (select user_id from {table}))::int) from users")
        assert lo < without < hi, table
    per_user = "select user_id, count(distinct product_id) as n from memberships group by 1"
    counts = dict(db2k(f"select n, count(*) from ({per_user}) group by 1"))
    assert set(counts) == {1, 2}
    assert one(db2k, "select count(*) - count(distinct (user_id, product_id)) from memberships") == 0
    catalogue = "select product_id from subscriptions"
    assert one(db2k, f"select count(*) from memberships where product_id not in ({catalogue})") == 0


def test_orders_line_up_with_purchases(db2k: Callable[[str], list[tuple]]) -> None:
    orders, purchases = db2k(
        "select (select count(*) from tracks where event = 'order_completed'), (select count(*) from purchases)"
    )[0]
    assert 0.85 < orders / purchases <= 1.0
    matched = one(
        db2k,
        """select avg((exists (select 1 from purchases p where p.user_id = t.user_id
                       and abs(epoch(p.purchased_at - t.timestamp)) <= 180))::int)
           from tracks t where event = 'order_completed' and t.user_id in (select user_id from users)""",
    )
    assert matched > 0.95


def test_catalogues(db2k: Callable[[str], list[tuple]]) -> None:
    products = db2k("select distinct plant_id, product_name, pdp_url, price from purchases where not used_coupon")
    assert 15 <= len({p[0] for p in products}) <= 25
    assert len({p[0] for p in products}) == len(products)  # one name, url and list price per product
    assert all(p[2] == "/products/" + p[1].lower().replace(" ", "-") for p in products)
    assert one(db2k, "select count(*) from purchases where round(price, 2) <> price or price <= 0") == 0
    assert 0.1 < one(db2k, "select avg(used_coupon::int) from purchases") < 0.3
    plants = "select distinct plant_id from purchases"
    assert one(db2k, f"select count(*) from product_viewed where product_id not in ({plants})") == 0
    assert {r[0] for r in db2k("select delivery from subscriptions")} == {"monthly", "quarterly", "annually"}
    sources = {r[0] for r in db2k("select distinct context_campaign_source from identifies")}
    assert {None, "", "google", "facebook", "newsletter", "instagram"} <= sources
    regions = {r[0] for r in db2k("select distinct geo_region from users")}
    assert {"Northeast", "Southwest", "Pacific Northwest", "Midwest", "Southeast"} <= regions
    assert 0.02 < one(db2k, "select avg((age is null)::int) from users") < 0.15


# ------------------------------------------------------------------------------------------------ dbt seeds


def test_seeds_are_the_generator_output(tmp_path: Path) -> None:
    """integration_tests/seeds/raw_*.csv must be regenerated (see SEED_ARGS) whenever the generator changes."""
    generate(tmp_path, **SEED_ARGS)  # type: ignore[arg-type]
    for table in TABLES:
        fresh = pacsv.read_csv(tmp_path / f"raw_{table}.csv")
        committed = pacsv.read_csv(SEEDS_DIR / f"raw_{table}.csv")
        assert committed.equals(fresh), f"stale seed raw_{table}.csv: regenerate with generate(..., **{SEED_ARGS})"


def test_seeds_keep_every_kind_of_mess_as_dbt_reads_them() -> None:
    """dbt seeds load '' as NULL (and 'null' too, except on dbt-duckdb): the other junk values must be there."""
    con = duckdb.connect()
    for table in TABLES:
        path = (SEEDS_DIR / f"raw_{table}.csv").as_posix()
        con.execute(f"create view {table} as select * from read_csv('{path}', all_varchar = true)")

    def q(sql: str) -> object:
        return con.execute(sql).fetchall()[0][0]

    assert q("select count(*) from users") == 60
    assert q("select count(*) from identifies where anonymous_id = 'unknown'") > 0
    assert q("select count(*) from identifies where user_id = 'unknown'") > 0
    assert q("select count(*) from identifies where email = 'unknown'") > 0
    assert q("select count(*) from identifies where email = 'test@example.com'") > 0
    assert q("select count(*) from tracks where anonymous_id = 'unknown'") > 0
    assert q("select count(*) from tracks where user_id = 'unknown'") > 0
    assert q("select count(*) from identifies where email <> lower(trim(email)) and email like ' %'") > 0
    shared = q("select count(*) from (select email from users group by 1 having count(*) > 1)")
    assert shared >= 1
    family = "select lower(trim(email)) from identifies where user_id like 'u0%' group by 1"
    assert q(f"select count(*) from ({family} having count(distinct user_id) > 1)") >= 1
    links = "select user_id, anonymous_id from tracks union all select user_id, anonymous_id from identifies"
    devices = f"select user_id, count(distinct anonymous_id) as n from ({links}) where length(anonymous_id) = 36"
    assert q(f"select max(n) from ({devices} and user_id like 'u0%' group by 1)") >= 3
    seen = "select user_id from tracks where user_id is not null union select user_id from identifies"
    assert q(f"select count(*) from users where user_id not in ({seen} where user_id is not null)") >= 1
    assert q("select count(*) from users where user_id not in (select user_id from purchases)") >= 1
    assert q("select count(*) from users where user_id not in (select user_id from memberships)") >= 1
    assert q("select count(*) from tracks where user_id is null and length(anonymous_id) = 36") > 0
