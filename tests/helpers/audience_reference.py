"""The audience tests' reference: the small test project's data (tests/projects/audiences), and a plain-Python
evaluator of condition trees over it. Semantics (docs/audiences.md): a condition on NULL is false,
`not` is the complement, a relation with no matching rows has count 0.

Shared by the compiler's tests and the studio's (funnel, overlap and breakdown numbers are checked against it).
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent / "projects" / "audiences"
AS_OF = datetime(2026, 1, 1)
REGIONS = ["North", "South", "East"]
PAGES = ["/p/fern", "/p/aloe", "/home", "/cart"]

# Columns of each model, and the join pairs of each hop (from model, to model) -> [(from col, to col)]:
# written out here independently of the macros' reading of the YAML.
COLUMNS = {
    "users": ["user_id", "name", "email", "region", "age", "signup_at"],
    "orders": ["order_id", "user_id", "product_id", "amount", "status", "ordered_at"],
    "orders_empty": ["order_id", "user_id", "product_id", "amount", "status", "ordered_at"],
    "events": ["user_id", "event", "product_id", "page", "ts"],
    "memberships": ["user_id", "plan_id"],
    "plans": ["plan_id", "delivery", "price"],
    "products": ["product_id", "category", "list_price"],
}
HOPS = {
    ("users", "orders"): [("user_id", "user_id")],
    ("users", "orders_empty"): [("user_id", "user_id")],
    ("users", "events"): [("user_id", "user_id")],
    ("users", "memberships"): [("user_id", "user_id")],
    ("memberships", "plans"): [("plan_id", "plan_id")],
    ("orders", "products"): [("product_id", "product_id")],
    ("orders", "events"): [("user_id", "user_id"), ("product_id", "product_id")],
    ("orders", "users"): [("user_id", "user_id")],
}
THROUGH = {("users", "plans"): "memberships"}
TIMESTAMP = {"events": "ts"}
TIMESTAMP_COLUMNS = {"signup_at", "ordered_at", "ts"}


# -- data ---------------------------------------------------------------------------------------------------------


def make_data(seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)

    def maybe(value, p_null=0.12):
        return None if rng.random() < p_null else value

    def ts(lo_days: int, hi_days: int) -> datetime:
        return AS_OF - timedelta(days=rng.randint(lo_days, hi_days), seconds=rng.randint(1, 86399))

    users = [
        {
            "user_id": f"u{i:02d}",
            "name": f"User {i}",
            "email": maybe(f"user{i}@{rng.choice(['mail', 'post'])}.com"),
            "region": maybe(rng.choice(REGIONS)),
            "age": maybe(rng.randint(18, 80)),
            "signup_at": maybe(ts(0, 400)),
        }
        for i in range(40)
    ]
    products = [
        {
            "product_id": f"p{i}",
            "category": maybe(rng.choice(["succulent", "fern", "tree"]), 0.2),
            "list_price": Decimal(rng.randint(500, 9000)) / 100,
        }
        for i in range(6)
    ]
    orders = []
    for i in range(90):
        user = rng.choice(users[:30])["user_id"] if rng.random() > 0.05 else None
        orders.append(
            {
                "order_id": f"o{i:03d}",
                "user_id": user,
                "product_id": maybe(f"p{rng.randrange(6)}", 0.08),
                "amount": maybe(Decimal(rng.randint(100, 12000)) / 100, 0.1),
                "status": maybe(rng.choice(["paid", "paid", "refunded"]), 0.1),
                "ordered_at": ts(0, 300),
            }
        )
    events = []
    for _ in range(260):
        user = rng.choice(users[:34])["user_id"] if rng.random() > 0.04 else None
        when = ts(0, 90) if rng.random() > 0.03 else AS_OF + timedelta(days=rng.randint(1, 5))
        events.append(
            {
                "user_id": user,
                "event": maybe(rng.choice(["view", "view", "cart", "buy"]), 0.05),
                "product_id": maybe(f"p{rng.randrange(6)}", 0.1),
                "page": maybe(rng.choice(PAGES), 0.1),
                "ts": when,
            }
        )
    plans = [
        {"plan_id": "s1", "delivery": "monthly", "price": Decimal("19.00")},
        {"plan_id": "s2", "delivery": "monthly", "price": Decimal("29.00")},
        {"plan_id": "s3", "delivery": "annually", "price": Decimal("199.00")},
        {"plan_id": "s4", "delivery": None, "price": None},
    ]
    memberships = [
        {"user_id": rng.choice(users)["user_id"], "plan_id": rng.choice(["s1", "s2", "s3", "s4", "s9"])}
        for _ in range(30)
    ]
    return {
        "users": users,
        "orders": orders,
        "events": events,
        "plans": plans,
        "memberships": memberships,
        "products": products,
    }


def write_seeds(root: Path, data: dict[str, list[dict[str, Any]]]) -> None:
    for table, rows in data.items():
        with (root / "seeds" / f"seed_{table}.csv").open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(COLUMNS[table])
            for row in rows:
                out.writerow(
                    [
                        ""
                        if row[c] is None
                        else row[c].strftime("%Y-%m-%d %H:%M:%S")
                        if isinstance(row[c], datetime)
                        else row[c]
                        for c in COLUMNS[table]
                    ]
                )


def read_back(project) -> dict[str, list[dict[str, Any]]]:
    """The rows as the warehouse holds them (types included), read through the models."""
    tables = {}
    for table, cols in COLUMNS.items():
        # timestamps travel as text: the Snowflake adapter's result conversion turns a NULL timestamp into 1970-01-01
        exprs = [f"cast({c} as varchar)" if c in TIMESTAMP_COLUMNS else c for c in cols]
        rows = project.query(f"select {', '.join(exprs)} from {project.relation(table)}")
        tables[table] = [
            {
                c: (datetime.fromisoformat(v) if c in TIMESTAMP_COLUMNS and v is not None else v)
                for c, v in zip(cols, row, strict=True)
            }
            for row in rows
        ]
    return tables


# -- the reference evaluator --------------------------------------------------------------------------------------


def _num(v):
    return Decimal(str(v)) if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) else v


def _value(v):
    if isinstance(v, str) and len(v) >= 10 and v[4] == "-" and v[7] == "-":
        return datetime.fromisoformat(v)
    return _num(v)


def compare(x, op: str, value) -> bool:
    """Two-valued: anything involving NULL is false, except `is null`."""
    if op == "is null":
        return x is None
    if op == "is not null":
        return x is not None
    if x is None:
        return False
    x = _num(x)
    if op in ("in", "not in"):
        values = [_value(v) for v in value if v is not None]
        return (x in values) == (op == "in")
    if op == "between":
        lo, hi = value
        return lo is not None and hi is not None and _value(lo) <= x <= _value(hi)
    if op in ("contains", "starts with", "ends with"):
        if value is None:
            return False
        return {"contains": value in x, "starts with": x.startswith(value), "ends with": x.endswith(value)}[op]
    if op == "within last days":
        return AS_OF - timedelta(days=value) <= x <= AS_OF
    if op == "more than days ago":
        return x < AS_OF - timedelta(days=value)
    if value is None:
        return False
    v = _value(value)
    return {
        "=": x == v,
        "!=": x != v,
        "<": x < v,
        "<=": x <= v,
        ">": x > v,
        ">=": x >= v,
        "before": x < v,
        "after": x > v,
    }[op]


class Evaluator:
    def __init__(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        self.tables = tables
        self.audiences: dict[str, set[str]] = {}

    def hop_rows(self, model: str, row: dict, target) -> list[dict]:
        """Rows at the end of the path from `row` of `model` (one per joined path, like SQL joins)."""
        path = [target] if isinstance(target, str) else list(target)
        steps = []
        here = model
        for step in path:
            if (here, step) in THROUGH:
                steps += [THROUGH[(here, step)], step]
            else:
                steps.append(step)
            here = step
        rows, here = [row], model
        for step in steps:
            pairs = HOPS[(here, step)]
            rows = [
                r
                for cur in rows
                for r in self.tables[step]
                if all(cur[a] is not None and cur[a] == r[b] for a, b in pairs)
            ]
            here = step
        return rows

    def ev(self, node: dict, model: str, row: dict) -> bool:
        if "and" in node:
            return all(self.ev(c, model, row) for c in node["and"])
        if "or" in node:
            return any(self.ev(c, model, row) for c in node["or"])
        if "not" in node:
            return not self.ev(node["not"], model, row)
        if "column" in node:
            return compare(row[node["column"]], node.get("op", "="), node.get("value"))
        if "in audience" in node:
            return row["user_id"] in self.audiences[node["in audience"]]
        if "not in audience" in node:
            return row["user_id"] not in self.audiences[node["not in audience"]]
        if "has" in node or "has not" in node:
            target = node.get("has", node.get("has not"))
            end = target if isinstance(target, str) else target[-1]
            rows = [
                r for r in self.hop_rows(model, row, target) if "where" not in node or self.ev(node["where"], end, r)
            ]
            if "has not" in node:
                return not rows
            having = node.get("having")
            if having is None:
                return bool(rows)
            having = [having] if isinstance(having, dict) else having
            return all(
                compare(self.aggregate(h.get("agg", "count"), h.get("column"), rows), h.get("op", ">="), h.get("value"))
                for h in having
            )
        target = node.get("performed", node.get("did not perform"))
        end = target if isinstance(target, str) else target[-1]
        ts = TIMESTAMP[end]
        rows = [r for r in self.hop_rows(model, row, target) if "where" not in node or self.ev(node["where"], end, r)]
        if "within_days" in node:
            rows = [r for r in rows if compare(r[ts], "within last days", node["within_days"])]
        if "between" in node:
            lo, hi = (_value(v) for v in node["between"])
            rows = [r for r in rows if r[ts] is not None and lo <= r[ts] < hi]
        if "did not perform" in node:
            return not rows
        checks = [k for k in ("times", "first", "last") if k in node]
        if not checks:
            return bool(rows)
        stamps = [r[ts] for r in rows if r[ts] is not None]
        got = {"times": len(rows), "first": min(stamps, default=None), "last": max(stamps, default=None)}
        return all(compare(got[k], node[k]["op"], node[k]["value"]) for k in checks)

    @staticmethod
    def aggregate(fn: str, column: str | None, rows: list[dict]):
        if fn == "count":
            return len(rows) if column is None else sum(r[column] is not None for r in rows)
        values = [_num(r[column]) for r in rows if r[column] is not None]
        if not values:
            return None
        return {"sum": sum(values), "avg": sum(values) / len(values), "min": min(values), "max": max(values)}[fn]

    def audience(self, where: dict | None, parent: str = "users") -> set[str]:
        return {r["user_id"] for r in self.tables[parent] if where is None or self.ev(where, parent, r)}


