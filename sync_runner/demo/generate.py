"""Deterministic, deliberately messy "plant store" data: users, identify/track events, purchases and more.

Identity stitching, feature and audience code is only worth testing on data that looks like a real event
pipeline: visitors browse anonymously before they sign up, people use several devices, families share an email,
emails arrive in mixed case with stray spaces, and tracking bugs attach junk ids ('', 'unknown', 'null',
'test@example.com') to thousands of unrelated rows. This module produces such data at any scale, reproducibly.

Design:

* Users are generated in chunks of `chunk_users`; each chunk draws from its own `numpy.random.Generator` seeded
  with `(seed, chunk index)`, so output depends only on the arguments and memory is bounded by the chunk size.
* Everything on the hot path is vectorised numpy / pyarrow: ids are rendered from digit/hex byte matrices,
  strings are built with `pyarrow.compute`, and string columns are `take`n from small pools (real ids followed
  by the junk values) so that a junk id is just an index pointing at the end of the pool.
* Each chunk is appended to one file per table (`pyarrow.parquet.ParquetWriter` or `pyarrow.csv.CSVWriter`).
* Every kind of mess has a minimum count per chunk (see `_pick`), so even a 60-user data set contains all of it.

All timestamps are naive UTC, whole seconds, and strictly before `REFERENCE_TIME`.

What the data means (so stitching and feature tests know what to expect):

* `users` is the store's customer database: every simulated person, including ~8% who never identify on the
  web (their tracks never carry a user_id; they may still buy, e.g. in store, and hold memberships).
* Each person has 1-4 devices (anonymous_ids). A device's rows carry the user_id from its login identify on;
  before that they are anonymous. Some secondary devices never log in. A real anonymous_id never links two users.
* Identify calls before a device's login have a NULL user_id and sometimes an email (newsletter forms).
* About 1% of users are pairs sharing a family email (never-identifying users are not in families).
* `order_completed` (preceded by `added_to_cart` in the same session) accompanies ~93% of purchases within two
  minutes, on one of the buyer's devices; ~5% are sent server-side with a user_id and a NULL anonymous_id.
* `product_viewed` rows belong to signed-up users; many precede a purchase of the same product.
* Coupon purchases cost 85% of the list price (rounded to cents).

The fixed dbt seeds in `integration_tests/seeds/` are
`generate("integration_tests/seeds", users=60, seed=7, fmt="csv", chunk_users=60, prefix="raw_")`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["REFERENCE_TIME", "TABLES", "generate"]

TABLES: tuple[str, ...] = (
    "users",
    "identifies",
    "tracks",
    "purchases",
    "product_viewed",
    "subscriptions",
    "memberships",
)
"""Table names, in the order files are written and counts are returned."""

REFERENCE_TIME = datetime(2026, 1, 1)
"""Naive UTC instant that every generated timestamp precedes: tests compute windowed features "as of" it."""

# ---------------------------------------------------------------------------------------------------------------
# Catalogues and vocabularies
# ---------------------------------------------------------------------------------------------------------------

# (product name, list price, relative popularity): popularity skews sales and views toward a few best sellers.
_PLANTS: tuple[tuple[str, float, float], ...] = (
    ("Monstera Deliciosa", 45.00, 9),
    ("Fiddle Leaf Fig", 65.00, 7),
    ("Snake Plant", 29.99, 10),
    ("Pothos", 19.99, 12),
    ("ZZ Plant", 34.99, 8),
    ("Peace Lily", 27.50, 7),
    ("Rubber Plant", 39.99, 5),
    ("Bird of Paradise", 89.00, 4),
    ("Calathea Orbifolia", 42.00, 4),
    ("String of Pearls", 24.99, 5),
    ("Chinese Money Plant", 22.00, 6),
    ("Aloe Vera", 14.99, 8),
    ("Boston Fern", 24.00, 4),
    ("Philodendron Brasil", 21.99, 6),
    ("Olive Tree", 120.00, 2),
    ("Parlor Palm", 32.00, 3),
    ("Spider Plant", 16.99, 7),
    ("Jade Plant", 18.50, 5),
    ("Alocasia Polly", 36.00, 3),
    ("Hoya Carnosa", 26.00, 3),
)

# (product id, name, delivery, price): the small, fixed subscription catalogue.
_SUBSCRIPTIONS: tuple[tuple[str, str, str, float], ...] = (
    ("s01", "Succulent Club", "monthly", 19.00),
    ("s02", "Houseplant of the Month", "monthly", 29.00),
    ("s03", "Rare Plant Drop", "quarterly", 79.00),
    ("s04", "Seasonal Care Kit", "quarterly", 39.00),
    ("s05", "Plant Care Plan", "annually", 149.00),
    ("s06", "Greenhouse Club", "annually", 249.00),
)

# fmt: off
_FIRST_NAMES = (
    "Jane", "John", "Maria", "James", "Aisha", "Wei", "Olivia", "Liam", "Emma", "Noah", "Sofia", "Mateo", "Priya",
    "Arjun", "Chloe", "Lucas", "Mia", "Ethan", "Zoe", "Omar", "Hannah", "Diego", "Grace", "Kenji", "Fatima",
    "Samuel", "Leah", "Isaac", "Nora", "Elena", "Marcus", "Yuki", "Amara", "Felix", "Ruby", "Hugo", "Ivy", "Theo",
    "Lila", "Owen",
)
_LAST_NAMES = (
    "Doe", "Smith", "Garcia", "Johnson", "Khan", "Chen", "Brown", "Nguyen", "Lopez", "Patel", "Miller", "Davis",
    "Wilson", "Kim", "Martinez", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "White", "Harris", "Clark",
    "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill",
    "Rivera", "Campbell", "Mitchell", "Roberts", "Carter",
)
# fmt: on
_EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "proton.me")
_EMAIL_DOMAIN_WEIGHTS = (0.45, 0.15, 0.15, 0.12, 0.08, 0.05)
_REGIONS = ("Northeast", "Southeast", "Midwest", "Southwest", "Pacific Northwest", "Mountain West")
_REGION_WEIGHTS = (0.24, 0.22, 0.20, 0.14, 0.12, 0.08)
# None = NULL; '' = the empty string some SDKs send instead of NULL.
_CAMPAIGN_SOURCES = (None, "", "google", "facebook", "newsletter", "instagram", "tiktok", "bing")
_CAMPAIGN_WEIGHTS = (0.45, 0.10, 0.16, 0.10, 0.08, 0.07, 0.02, 0.02)

# Track event names; codes are indexes into this tuple. Browsing events are drawn with _BROWSE_WEIGHTS.
_EVENTS = ("page_viewed", "product_viewed", "added_to_cart", "signed_up", "order_completed")
_BROWSE_WEIGHTS = (0.6, 0.3, 0.1)
_SIGNED_UP, _ORDER_COMPLETED = 3, 4
_ADDED_TO_CART = 2

# The junk values tracking bugs attach to many rows: a stitcher must treat them as "no id", not as a hub.
_JUNK_IDS = ("", "unknown", "null")
_JUNK_EMAILS = ("", "unknown", "null", "test@example.com")

# ---------------------------------------------------------------------------------------------------------------
# Behaviour knobs (fractions and rates). Kept as module constants so tests and docs can refer to them.
# ---------------------------------------------------------------------------------------------------------------

_HISTORY_DAYS = 730  # activity spans ~2 years before REFERENCE_TIME
_NEVER_IDENTIFY_RATE = 0.08  # users whose web events never carry a user_id
_FAMILY_PAIR_RATE = 0.01  # pairs of users sharing an email -> ~2% of users share one
_DEVICE_COUNT_WEIGHTS = (0.55, 0.28, 0.12, 0.05)  # 1, 2, 3, 4 anonymous_ids per user
_SECONDARY_DEVICE_NEVER_LOGS_IN = 0.10
_CHURN_RATE = 0.35  # users whose activity stops before REFERENCE_TIME
_PRE_LOGIN_IDENTIFIES = 0.8  # Poisson mean of anonymous identify calls per device before its login
_PRE_LOGIN_EMAIL_RATE = 0.35  # of those, how many carry an email (newsletter forms) without a user_id
_POST_LOGIN_IDENTIFIES = 1.2  # Poisson mean of identify calls per device after its login
_MESSY_EMAIL_RATE = 0.12  # of identify rows with a real email: mixed case and/or padded with spaces
_ORDER_TRACKED_RATE = 0.93  # purchases that also show up as an order_completed track (ad blockers eat the rest)
_SERVER_SIDE_ORDER_RATE = 0.05  # order_completed sent server-side: user_id but NULL anonymous_id
_VIEW_BEFORE_PURCHASE_RATE = 0.6  # purchases preceded by a product_viewed row for the same product
_COUPON_RATE = 0.18
_COUPON_DISCOUNT = 0.85
_SESSION_EVENTS_MEAN = 3.0  # Poisson mean of extra events per session (so ~4 events per session)
_SESSION_PACE_MEDIAN_S = 40.0  # median of a session's mean gap between events; log-normal across sessions
_SESSION_PACE_SIGMA = 1.0  # spread of that pace: most sessions last a few minutes, some close to the one-hour cap
_JUNK_RATES = {  # fraction of rows whose column is replaced by a junk value
    ("identifies", "anonymous_id"): 0.025,
    ("identifies", "user_id"): 0.015,
    ("identifies", "email"): 0.03,
    ("tracks", "anonymous_id"): 0.025,
    ("tracks", "user_id"): 0.01,
}
_MEMBERSHIP_COUNT_WEIGHTS = (0.72, 0.22, 0.06)  # 0, 1, 2 subscriptions per user

_EPOCH = datetime(1970, 1, 1)
_REF = int((REFERENCE_TIME - _EPOCH).total_seconds())
_DAY = 86_400
_HOUR = 3_600
_NEVER = np.iinfo(np.int64).max  # "never happens" sentinel for signup / login times
_USER_ID_DIGITS = 7
_PURCHASE_ID_DIGITS = 10
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Where the 32 hex digits go in a 36-character 8-4-4-4-12 UUID string.
_UUID_HEX_COLUMNS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


_PLANT_IDS = pa.array([f"p{i + 1:02d}" for i in range(len(_PLANTS))])
_PLANT_NAMES = pa.array([p[0] for p in _PLANTS])
_PLANT_URLS = pa.array([f"/products/{_slug(p[0])}" for p in _PLANTS])
_PLANT_PRICES = np.array([p[1] for p in _PLANTS])
_PLANT_WEIGHTS = np.array([p[2] for p in _PLANTS]) / sum(p[2] for p in _PLANTS)


# ---------------------------------------------------------------------------------------------------------------
# Schemas
# ---------------------------------------------------------------------------------------------------------------


def _schemas(ts: pa.DataType) -> dict[str, pa.Schema]:
    """Arrow schemas of every table; `ts` is timestamp[us] for Parquet and timestamp[s] for CSV (no fractions)."""
    s = pa.string()
    return {
        "users": pa.schema([("user_id", s), ("name", s), ("email", s), ("geo_region", s), ("age", pa.int32())]),
        "identifies": pa.schema(
            [("anonymous_id", s), ("user_id", s), ("email", s), ("timestamp", ts), ("context_campaign_source", s)]
        ),
        "tracks": pa.schema([("anonymous_id", s), ("user_id", s), ("event", s), ("session_id", s), ("timestamp", ts)]),
        "purchases": pa.schema(
            [
                ("purchase_id", s),
                ("user_id", s),
                ("plant_id", s),
                ("product_name", s),
                ("price", pa.float64()),
                ("used_coupon", pa.bool_()),
                ("pdp_url", s),
                ("purchased_at", ts),
            ]
        ),
        "product_viewed": pa.schema([("user_id", s), ("product_id", s), ("url", s), ("timestamp", ts)]),
        "subscriptions": pa.schema([("product_id", s), ("name", s), ("delivery", s), ("price", pa.float64())]),
        "memberships": pa.schema([("user_id", s), ("product_id", s)]),
    }


# ---------------------------------------------------------------------------------------------------------------
# Vectorised building blocks
# ---------------------------------------------------------------------------------------------------------------


def _strings_from_bytes(buf: np.ndarray) -> pa.Array:
    """A string array from an (n, width) uint8 matrix of ASCII, zero-copy: all values have the same width."""
    n, width = buf.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    if offsets[-1] >= 2**31:
        # Only reachable with enormous chunks; keeps the column type plain `string` for readers.
        raise ValueError("chunk too large for one string column: lower chunk_users")
    data = np.ascontiguousarray(buf, dtype=np.uint8)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def _numbered_ids(prefix: str, numbers: np.ndarray, digits: int) -> pa.Array:
    """Ids such as 'u0000042' rendered from integers without a Python loop."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    powers = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    body = (numbers.astype(np.int64)[:, None] // powers) % 10 + ord("0")
    buf = np.empty((len(numbers), len(head) + digits), dtype=np.uint8)
    buf[:, : len(head)] = head
    buf[:, len(head) :] = body
    return _strings_from_bytes(buf)


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """Random version-4-looking UUID strings: realistic anonymous/session ids, unique with overwhelming odds."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    buf = np.full((n, 36), ord("-"), dtype=np.uint8)
    buf[:, _UUID_HEX_COLUMNS] = hexed
    return _strings_from_bytes(buf)


def _pick(rng: np.random.Generator, n: int, rate: float, minimum: int = 1) -> np.ndarray:
    """Sorted positions of about `rate * n` of `n` items, but at least `minimum` (capped at n).

    The minimum is what guarantees that tiny data sets (the 60-user dbt seeds) still contain every kind of mess.
    """
    k = min(n, max(minimum, round(rate * n)))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def _cycling_codes(rng: np.random.Generator, k: int, n_values: int) -> np.ndarray:
    """`k` codes in [0, n_values) in random order, each value present whenever k >= n_values."""
    return rng.permutation(np.arange(k, dtype=np.int64) % n_values)


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform whole seconds in [lo, hi) (or lo itself where hi <= lo)."""
    span = np.maximum(hi - lo, 1)
    return lo + np.floor(rng.random(len(lo)) * span).astype(np.int64)


def _take(pool: pa.Array, index: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """`pool[index]`, NULL where `null` is true: one vectorised gather per string column."""
    return pool.take(pa.array(index, type=pa.int64(), mask=null))


def _timestamps(seconds: np.ndarray, ts: pa.DataType) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]")).cast(ts)


def _with_junk(
    rng: np.random.Generator, pool: pa.Array, index: np.ndarray, null: np.ndarray, rate: float, junk: tuple[str, ...]
) -> pa.Array:
    """Gather `pool[index]` after pointing a random `rate` of rows (each junk value at least once) at junk values."""
    index = index.copy()
    null = null.copy()
    rows = _pick(rng, len(index), rate, minimum=len(junk) if len(index) else 0)
    index[rows] = len(pool) + _cycling_codes(rng, len(rows), len(junk))
    null[rows] = False
    return _take(pa.concat_arrays([pool, pa.array(junk, type=pa.string())]), index, null)


# ---------------------------------------------------------------------------------------------------------------
# One chunk of users
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _People:
    """Per-user state shared by all tables of a chunk (local user index = position in these arrays)."""

    n: int
    user_id: pa.Array
    email: pa.Array  # canonical (trimmed, lower-case) email, shared within families
    identified: np.ndarray  # bool: ever sends a user_id from the web
    first_seen: np.ndarray  # int64 epoch seconds of the first anonymous visit
    signup: np.ndarray  # first identify with a user_id, or _NEVER
    active_until: np.ndarray  # last moment of activity (REFERENCE_TIME unless churned)


@dataclass
class _Devices:
    """Per-device (anonymous_id) state; a device belongs to exactly one user."""

    n: int
    user: np.ndarray  # local user index
    first_of_user: np.ndarray  # per user: index of its first device
    per_user: np.ndarray  # per user: number of devices
    anonymous_id: pa.Array
    first_seen: np.ndarray
    login: np.ndarray  # when the device first identifies with the user_id, or _NEVER
    active_until: np.ndarray


def _make_people(rng: np.random.Generator, first_number: int, n: int, id_digits: int) -> tuple[_People, pa.Table]:
    numbers = np.arange(first_number, first_number + n, dtype=np.int64)
    user_id = _numbered_ids("u", numbers, id_digits)
    first = rng.integers(0, len(_FIRST_NAMES), n)
    last = rng.integers(0, len(_LAST_NAMES), n)
    style = rng.integers(0, 3, n).astype(np.int8)
    domain = rng.choice(len(_EMAIL_DOMAINS), size=n, p=_EMAIL_DOMAIN_WEIGHTS)

    # Families: user 2k+1 shares user 2k's email (and surname). Odd positions only, so pairs never chain.
    odd = np.arange(1, n, 2)
    family = odd[_pick(rng, len(odd), 2 * _FAMILY_PAIR_RATE, minimum=1 if n >= 10 else 0)]
    last[family] = last[family - 1]
    email_source = np.arange(n)
    email_source[family] = family - 1

    first_s = pa.array(_FIRST_NAMES).take(pa.array(first))
    last_s = pa.array(_LAST_NAMES).take(pa.array(last))
    first_l, last_l = pc.utf8_lower(first_s), pc.utf8_lower(last_s)
    number_s = pc.cast(pa.array(numbers), pa.string())
    local = pc.choose(
        pa.array(style),
        pc.binary_join_element_wise(first_l, ".", last_l, number_s, ""),  # jane.doe42
        pc.binary_join_element_wise(first_l, number_s, ""),  # jane42
        pc.binary_join_element_wise(first_l, "_", last_l, number_s, ""),  # jane_doe42
    )
    email = pc.binary_join_element_wise(local, pa.array(_EMAIL_DOMAINS).take(pa.array(domain)), "@")
    email = email.take(pa.array(email_source))
    name = pc.binary_join_element_wise(first_s, last_s, " ")

    region = rng.choice(len(_REGIONS), size=n, p=_REGION_WEIGHTS)
    age = rng.integers(18, 76, n).astype(np.int32)
    age_null = rng.random(n) < 0.07
    users = pa.table(
        {
            "user_id": user_id,
            "name": name,
            "email": email,
            "geo_region": pa.array(_REGIONS).take(pa.array(region)),
            "age": pa.array(age, mask=age_null),
        }
    )

    # Never-identifying users are drawn outside families, so every shared email shows up under two user_ids.
    identified = np.ones(n, dtype=bool)
    loners = np.setdiff1d(np.arange(n), np.concatenate([family, family - 1]))
    loner_rate = _NEVER_IDENTIFY_RATE * n / max(len(loners), 1)
    identified[loners[_pick(rng, len(loners), loner_rate, minimum=1 if n >= 10 else 0)]] = False

    # Skewed toward recent first visits (a growing store) over ~2 years, at least 2 hours before the reference.
    back = 2 * _HOUR + np.floor((_HISTORY_DAYS * _DAY - 2 * _HOUR) * rng.random(n) ** 1.3).astype(np.int64)
    first_seen = _REF - back
    churned = rng.random(n) < _CHURN_RATE
    active_until = np.where(churned, _between(rng, first_seen + 2 * _HOUR, np.full(n, _REF)), _REF)
    # Signup: a third sign up within minutes, the rest after days; always well inside the active window.
    quick = rng.random(n) < 0.35
    delay = np.where(quick, rng.integers(60, 900, n), 60 + rng.exponential(3 * _DAY, n).astype(np.int64))
    delay = np.minimum(delay, np.floor(0.8 * (active_until - first_seen)).astype(np.int64))
    signup = np.where(identified, first_seen + delay, _NEVER)
    return _People(n, user_id, email, identified, first_seen, signup, active_until), users


def _make_devices(rng: np.random.Generator, people: _People) -> _Devices:
    n = people.n
    per_user = rng.choice(len(_DEVICE_COUNT_WEIGHTS), size=n, p=_DEVICE_COUNT_WEIGHTS) + 1
    if n >= 10 and per_user.max() < len(_DEVICE_COUNT_WEIGHTS):  # small data sets still get a 4-device user
        per_user[rng.integers(0, n)] = len(_DEVICE_COUNT_WEIGHTS)
    first_of_user = np.cumsum(per_user) - per_user
    user = np.repeat(np.arange(n), per_user)
    d = len(user)
    rank = np.arange(d) - first_of_user[user]
    u_first, u_until = people.first_seen[user], people.active_until[user]

    later = _between(rng, u_first, u_until - _HOUR)
    first_seen = np.where(rank == 0, u_first, later)

    identified = people.identified[user]
    signup = np.where(identified, people.signup[user], 0)
    login_later = np.maximum(first_seen, signup) + 60 + rng.exponential(_DAY, d).astype(np.int64)
    login = np.where(rank == 0, signup, login_later)
    logs_in = identified & (login < u_until - 60)
    logs_in &= (rank == 0) | (rng.random(d) >= _SECONDARY_DEVICE_NEVER_LOGS_IN)
    login = np.where(logs_in, login, _NEVER)
    return _Devices(d, user, first_of_user, per_user, _uuids(rng, d), first_seen, login, u_until)


def _make_identifies(rng: np.random.Generator, people: _People, dev: _Devices, ts: pa.DataType) -> pa.Table:
    logged = dev.login != _NEVER
    n_pre = rng.poisson(_PRE_LOGIN_IDENTIFIES, dev.n)
    n_post = np.where(logged, rng.poisson(_POST_LOGIN_IDENTIFIES, dev.n), 0)

    # Anonymous identifies before the device's login (or ever, for devices that never log in).
    pre_dev = np.repeat(np.arange(dev.n), n_pre)
    pre_end = np.where(logged, dev.login, dev.active_until)[pre_dev]
    pre_t = _between(rng, dev.first_seen[pre_dev], pre_end)
    pre_email = people.identified[dev.user[pre_dev]] & (rng.random(len(pre_dev)) < _PRE_LOGIN_EMAIL_RATE)
    # The login identify, then later identifies (some without traits).
    login_dev = np.flatnonzero(logged)
    post_dev = np.repeat(np.arange(dev.n), n_post)
    post_t = _between(rng, dev.login[post_dev], dev.active_until[post_dev])

    row_dev = np.concatenate([pre_dev, login_dev, post_dev])
    t = np.concatenate([pre_t, dev.login[login_dev], post_t])
    has_user = np.concatenate([np.zeros(len(pre_dev), bool), np.ones(len(login_dev) + len(post_dev), bool)])
    has_email = np.concatenate([pre_email, rng.random(len(login_dev)) < 0.97, rng.random(len(post_dev)) < 0.85])
    order = np.argsort(t, kind="stable")
    row_dev, t, has_user, has_email = row_dev[order], t[order], has_user[order], has_email[order]
    row_user = dev.user[row_dev]
    rows = len(t)

    anonymous_id = _with_junk(
        rng, dev.anonymous_id, row_dev, np.zeros(rows, bool), _JUNK_RATES["identifies", "anonymous_id"], _JUNK_IDS
    )
    user_id = _with_junk(rng, people.user_id, row_user, ~has_user, _JUNK_RATES["identifies", "user_id"], _JUNK_IDS)

    # Emails: some real occurrences are mixed-case / space-padded variants appended after the canonical pool.
    real = np.flatnonzero(has_email)
    messy = real[_pick(rng, len(real), _MESSY_EMAIL_RATE, minimum=3 if len(real) else 0)]
    canonical = people.email.take(pa.array(row_user[messy]))
    variants = pc.choose(
        pa.array(_cycling_codes(rng, len(messy), 3).astype(np.int8)),
        pc.binary_join_element_wise("  ", pc.utf8_title(canonical), " ", ""),  # '  Jane.Doe42@Gmail.Com '
        pc.utf8_upper(canonical),  # 'JANE.DOE42@GMAIL.COM'
        pc.binary_join_element_wise(pc.utf8_capitalize(canonical), " ", ""),  # 'Jane.doe42@gmail.com '
    )
    email_index = row_user.copy()
    email_index[messy] = people.n + np.arange(len(messy))
    email = _with_junk(
        rng,
        pa.concat_arrays([people.email, variants]),
        email_index,
        ~has_email,
        _JUNK_RATES["identifies", "email"],
        _JUNK_EMAILS,
    )

    source = rng.choice(len(_CAMPAIGN_SOURCES), size=rows, p=_CAMPAIGN_WEIGHTS)
    return pa.table(
        {
            "anonymous_id": anonymous_id,
            "user_id": user_id,
            "email": email,
            "timestamp": _timestamps(t, ts),
            "context_campaign_source": pa.array(_CAMPAIGN_SOURCES, type=pa.string()).take(pa.array(source)),
        }
    )


@dataclass
class _Purchases:
    user: np.ndarray
    product: np.ndarray
    at: np.ndarray
    table: pa.Table


def _make_purchases(
    rng: np.random.Generator, people: _People, rate: float, first_number: int, ts: pa.DataType
) -> _Purchases:
    """Purchases per user are gamma-Poisson (many buy nothing, a few buy a lot); ids continue a global counter."""
    n = people.n
    per_user = rng.poisson(rate * rng.gamma(0.7, 1 / 0.7, n))
    user = np.repeat(np.arange(n), per_user)
    start = np.where(people.identified, people.signup, people.first_seen)  # never-identified: in-store buyers
    at = _between(rng, start[user], people.active_until[user])
    order = np.argsort(at, kind="stable")
    user, at = user[order], at[order]
    product = rng.choice(len(_PLANTS), size=len(user), p=_PLANT_WEIGHTS)
    coupon = rng.random(len(user)) < _COUPON_RATE
    price = np.where(coupon, np.round(_PLANT_PRICES[product] * _COUPON_DISCOUNT, 2), _PLANT_PRICES[product])
    product_a = pa.array(product)
    table = pa.table(
        {
            "purchase_id": _numbered_ids("o", first_number + np.arange(len(user)), _PURCHASE_ID_DIGITS),
            "user_id": people.user_id.take(pa.array(user)),
            "plant_id": _PLANT_IDS.take(product_a),
            "product_name": _PLANT_NAMES.take(product_a),
            "price": pa.array(price, type=pa.float64()),
            "used_coupon": pa.array(coupon),
            "pdp_url": _PLANT_URLS.take(product_a),
            "purchased_at": _timestamps(at, ts),
        }
    )
    return _Purchases(user, product, at, table)


def _make_tracks(
    rng: np.random.Generator,
    people: _People,
    dev: _Devices,
    buys: _Purchases,
    browse_per_user: float,
    ts: pa.DataType,
) -> pa.Table:
    """Browsing sessions per device, a signed_up event per identified user, and cart + order events per purchase.

    A row gets the user_id only once its device has logged in, which is what leaves the anonymous pre-signup
    history an identity stitcher has to recover.
    """
    # --- browsing: events per device (device 0 busiest), grouped into sessions of ~4 events within an hour
    activity = rng.gamma(1.5, 1 / 1.5, people.n)
    weight = np.where(np.arange(dev.n) == dev.first_of_user[dev.user], 1.0, 0.5)
    weight_sum = 1.0 + 0.5 * (dev.per_user - 1)
    mean = browse_per_user * activity[dev.user] * weight / weight_sum[dev.user]
    count = 1 + rng.poisson(np.maximum(mean - 1.0, 0.0))
    row_dev = np.repeat(np.arange(dev.n), count)
    dev_row_start = np.cumsum(count) - count
    pos = np.arange(len(row_dev)) - dev_row_start[row_dev]
    size = 1 + rng.poisson(_SESSION_EVENTS_MEAN, dev.n)  # events per session, per device
    sessions = (count + size - 1) // size
    dev_sess_start = np.cumsum(sessions) - sessions
    row_sess = dev_sess_start[row_dev] + pos // size[row_dev]
    sess_dev = np.repeat(np.arange(dev.n), sessions)
    sess_local = np.arange(len(sess_dev)) - dev_sess_start[sess_dev]
    # The first session of a device starts when the device is first seen; later ones anywhere in its lifetime.
    sess_t0 = np.where(
        sess_local == 0,
        dev.first_seen[sess_dev],
        _between(rng, dev.first_seen[sess_dev], dev.active_until[sess_dev] - _HOUR),
    )
    pace = np.exp(rng.normal(np.log(_SESSION_PACE_MEDIAN_S), _SESSION_PACE_SIGMA, len(sess_dev)))
    first_in_session = (pos % size[row_dev]) == 0
    gaps = np.where(first_in_session, 0, (rng.exponential(1.0, len(row_dev)) * pace[row_sess]).astype(np.int64) + 1)
    cum = np.cumsum(gaps)
    sess_first_row = dev_row_start[sess_dev] + sess_local * size[sess_dev]
    offset = np.minimum(cum - cum[sess_first_row][row_sess], _HOUR - 1)
    browse_t = sess_t0[row_sess] + offset
    browse_event = rng.choice(len(_BROWSE_WEIGHTS), size=len(row_dev), p=_BROWSE_WEIGHTS)
    n_sessions = len(sess_dev)

    # --- signed_up: on the user's first device at signup, in a session of its own
    signed = np.flatnonzero(people.identified)
    signed_dev = dev.first_of_user[signed]
    signed_sess = n_sessions + np.arange(len(signed))
    n_sessions += len(signed)

    # --- checkout: added_to_cart then order_completed, near each tracked purchase, on one of the buyer's devices
    tracked = np.flatnonzero(rng.random(len(buys.user)) < _ORDER_TRACKED_RATE)
    buyer = buys.user[tracked]
    order_dev = dev.first_of_user[buyer] + np.floor(rng.random(len(tracked)) * dev.per_user[buyer]).astype(np.int64)
    order_t = buys.at[tracked] + rng.integers(-120, 121, len(tracked))
    cart_t = order_t - rng.integers(30, 900, len(tracked))
    order_sess = n_sessions + np.arange(len(tracked))
    n_sessions += len(tracked)
    server = people.identified[buyer] & (order_t >= people.signup[buyer])
    server &= rng.random(len(tracked)) < _SERVER_SIDE_ORDER_RATE

    k_b, k_s, k_o = len(row_dev), len(signed), len(tracked)
    t = np.concatenate([browse_t, people.signup[signed], cart_t, order_t])
    row_dev = np.concatenate([row_dev, signed_dev, order_dev, order_dev])
    row_sess = np.concatenate([row_sess, signed_sess, order_sess, order_sess])
    event = np.concatenate(
        [
            browse_event,
            np.full(k_s, _SIGNED_UP),
            np.full(k_o, _ADDED_TO_CART),
            np.full(k_o, _ORDER_COMPLETED),
        ]
    )
    server_row = np.concatenate([np.zeros(k_b + k_s + k_o, bool), server])
    t = np.clip(t, _REF - _HISTORY_DAYS * _DAY - _DAY, _REF - 1)

    order = np.argsort(t, kind="stable")
    t, row_dev, row_sess, event, server_row = t[order], row_dev[order], row_sess[order], event[order], server_row[order]
    row_user = dev.user[row_dev]
    has_user = (t >= dev.login[row_dev]) | server_row

    anonymous_id = _with_junk(
        rng, dev.anonymous_id, row_dev, server_row, _JUNK_RATES["tracks", "anonymous_id"], _JUNK_IDS
    )
    user_id = _with_junk(rng, people.user_id, row_user, ~has_user, _JUNK_RATES["tracks", "user_id"], _JUNK_IDS)
    return pa.table(
        {
            "anonymous_id": anonymous_id,
            "user_id": user_id,
            "event": pa.array(_EVENTS).take(pa.array(event)),
            "session_id": _uuids(rng, n_sessions).take(pa.array(row_sess)),
            "timestamp": _timestamps(t, ts),
        }
    )


def _make_views(
    rng: np.random.Generator, people: _People, buys: _Purchases, base_rate: float, ts: pa.DataType
) -> pa.Table:
    """Product page views of signed-up users: independent browsing plus a view shortly before many purchases."""
    per_user = np.where(people.identified, rng.poisson(base_rate * rng.gamma(0.8, 1 / 0.8, people.n)), 0)
    user = np.repeat(np.arange(people.n), per_user)
    start = np.where(people.identified, people.signup, 0)
    at = _between(rng, start[user], people.active_until[user])
    product = rng.choice(len(_PLANTS), size=len(user), p=_PLANT_WEIGHTS)

    linked = np.flatnonzero(people.identified[buys.user] & (rng.random(len(buys.user)) < _VIEW_BEFORE_PURCHASE_RATE))
    linked_user = buys.user[linked]
    linked_at = np.maximum(buys.at[linked] - rng.integers(60, 3 * _DAY, len(linked)), people.signup[linked_user])

    user = np.concatenate([user, linked_user])
    at = np.concatenate([at, linked_at])
    product = np.concatenate([product, buys.product[linked]])
    order = np.argsort(at, kind="stable")
    user, at, product = user[order], at[order], pa.array(product[order])
    return pa.table(
        {
            "user_id": people.user_id.take(pa.array(user)),
            "product_id": _PLANT_IDS.take(product),
            "url": _PLANT_URLS.take(product),
            "timestamp": _timestamps(at, ts),
        }
    )


def _make_memberships(rng: np.random.Generator, people: _People) -> pa.Table:
    k = rng.choice(len(_MEMBERSHIP_COUNT_WEIGHTS), size=people.n, p=_MEMBERSHIP_COUNT_WEIGHTS)
    one = rng.integers(0, len(_SUBSCRIPTIONS), people.n)
    two = (one + 1 + rng.integers(0, len(_SUBSCRIPTIONS) - 1, people.n)) % len(_SUBSCRIPTIONS)  # distinct
    user = np.concatenate([np.flatnonzero(k >= 1), np.flatnonzero(k == 2)])
    product = np.concatenate([one[k >= 1], two[k == 2]])
    order = np.argsort(user, kind="stable")
    ids = pa.array([s[0] for s in _SUBSCRIPTIONS])
    return pa.table(
        {"user_id": people.user_id.take(pa.array(user[order])), "product_id": ids.take(pa.array(product[order]))}
    )


def _subscriptions() -> pa.Table:
    return pa.table(
        {
            "product_id": [s[0] for s in _SUBSCRIPTIONS],
            "name": [s[1] for s in _SUBSCRIPTIONS],
            "delivery": [s[2] for s in _SUBSCRIPTIONS],
            "price": pa.array([s[3] for s in _SUBSCRIPTIONS], type=pa.float64()),
        }
    )


# ---------------------------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------------------------


def _check_args(users: int, seed: int, fmt: str, chunk_users: int, rates: dict[str, float]) -> None:
    if isinstance(users, bool) or not isinstance(users, int) or users < 1:
        raise ValueError(f"users must be a positive integer, got {users!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    if isinstance(chunk_users, bool) or not isinstance(chunk_users, int) or chunk_users < 1:
        raise ValueError(f"chunk_users must be a positive integer, got {chunk_users!r}")
    for name, value in rates.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def generate(
    out_dir: str | Path,
    users: int = 10_000,
    seed: int = 42,
    fmt: str = "parquet",
    chunk_users: int = 100_000,
    events_per_user: float = 20.0,
    purchases_per_user: float = 2.0,
    views_per_user: float = 5.0,
    progress: Callable[[int, int], None] | None = None,
    *,
    prefix: str = "",
) -> dict[str, int]:
    """Write one `<prefix><table>.<fmt>` file per table in `TABLES` into `out_dir`; return `{table: rows}`.

    The output is a pure function of (users, seed, chunk_users and the three rates): CSV files are byte-identical
    across runs and Parquet files hold identical data. Changing `chunk_users` changes the data (each chunk has
    its own random stream) but not its statistics.

    Rates are per-user means: `events_per_user` counts all track rows (browsing plus the signed_up, added_to_cart
    and order_completed events derived from signups and purchases), `purchases_per_user` purchases and
    `views_per_user` rows of the product_viewed table. Counts are heavy-tailed, so many users buy/view nothing.

    `prefix` is prepended to file names (the fixed dbt seeds use `prefix="raw_"`).

    `progress(done_users, total_users)` is called after each chunk is written.

    CSV caveat: every string is quoted and NULL is an empty unquoted field, so the empty-string junk id is `""`.
    That round-trips exactly with pyarrow (`ConvertOptions(strings_can_be_null=True,
    quoted_strings_can_be_null=False)`) and DuckDB (`read_csv(..., allow_quoted_nulls=false)`), but not with the
    readers' defaults, nor with dbt seeds, where it depends on the adapter: dbt-duckdb COPYs the file (''
    becomes NULL, 'null' stays a string), other adapters go through agate (both '' and 'null' become NULL). Only
    the 'unknown' and 'test@example.com' junk values survive everywhere.
    """
    rates = {"events_per_user": events_per_user, "purchases_per_user": purchases_per_user}
    rates["views_per_user"] = views_per_user
    _check_args(users, seed, fmt, chunk_users, rates)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ts = pa.timestamp("us") if fmt == "parquet" else pa.timestamp("s")
    schemas = _schemas(ts)
    id_digits = max(_USER_ID_DIGITS, len(str(users)))
    # Expected derived track rows per user: a signed_up for most users plus cart + order per tracked purchase.
    derived = (1 - _NEVER_IDENTIFY_RATE) + 2 * _ORDER_TRACKED_RATE * purchases_per_user
    browse_per_user = max(events_per_user - derived, 0.0)
    views_base = max(views_per_user - _VIEW_BEFORE_PURCHASE_RATE * purchases_per_user, 0.0)
    counts = dict.fromkeys(TABLES, 0)

    with contextlib.ExitStack() as stack:
        writers: dict[str, pq.ParquetWriter | pacsv.CSVWriter] = {}
        for table in TABLES:
            path = out / f"{prefix}{table}.{fmt}"
            if fmt == "parquet":
                writers[table] = stack.enter_context(pq.ParquetWriter(path, schemas[table], compression="zstd"))
            else:
                writers[table] = stack.enter_context(pacsv.CSVWriter(path, schemas[table]))

        def write(name: str, data: pa.Table) -> None:
            data = data.cast(schemas[name])
            writers[name].write_table(data)
            counts[name] += data.num_rows

        write("subscriptions", _subscriptions())
        for chunk, start in enumerate(range(0, users, chunk_users)):
            n = min(chunk_users, users - start)
            rng = np.random.default_rng([seed, chunk])
            people, users_table = _make_people(rng, start + 1, n, id_digits)
            write("users", users_table)
            devices = _make_devices(rng, people)
            write("identifies", _make_identifies(rng, people, devices, ts))
            buys = _make_purchases(rng, people, purchases_per_user, counts["purchases"] + 1, ts)
            write("purchases", buys.table)
            write("tracks", _make_tracks(rng, people, devices, buys, browse_per_user, ts))
            write("product_viewed", _make_views(rng, people, buys, views_base, ts))
            write("memberships", _make_memberships(rng, people))
            if progress is not None:
                progress(start + n, users)
    return counts
