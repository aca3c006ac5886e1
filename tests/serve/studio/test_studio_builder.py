"""What the builder sends is refused before any macro runs, one line naming the path in the tree: the declared
schema's rules (keys, operators, aggregates, splits) first, then what only a web form needs (plain identifiers,
models of this project, plain values)."""

from __future__ import annotations

import pytest

from sync_runner.core.errors import UserError
from sync_runner.serve.studio.builder import check_spec

MODELS = {"users", "orders", "events", "vip"}
PARENTS = {"users"}
OK = {"parent": "users", "where": {"and": [{"column": "age", "op": ">=", "value": 30},
                                          {"has": "orders", "having": {"agg": "sum", "column": "amount",
                                                                       "op": ">", "value": 10}},
                                          {"performed": "events", "within_days": 7, "times": {"op": ">=", "value": 2}},
                                          {"column": "region", "op": "in", "value": ["North", "South"]}]},
      "traits": [{"name": "spend", "related": "orders", "agg": "sum", "column": "amount"}],
      "splits": {"groups": {"a": 90, "holdout": 10}, "holdout": "holdout", "salt": "s"}}

MISTAKES = [
    ({"wher": {}}, "audience: unknown key 'wher' (did you mean 'where'?)"),
    ({"where": {"column": "age", "op": "~", "value": 1}}, "where.op: must be one of ="),
    ({"where": {"performed": "events", "within_day": 3}}, "where.within_day: unknown key 'within_day' (did you mean "
                                                          "'within_days'?)"),
    ({"where": {"column": "age; drop table users", "op": "="}}, "where.column: 'age; drop table users' is not a "
                                                                "column name"),
    ({"where": {"has": "order"}}, "where.has: unknown model 'order' (did you mean 'orders'?)"),
    ({"where": {"column": "region", "op": "in", "value": "North"}}, "where: 'in' needs a list of values"),
    ({"where": {"column": "age", "op": "between", "value": [1, 2, 3]}}, "where: 'between' needs a list of values "
                                                                        "[low, high]"),
    ({"where": {"column": "age", "op": "=", "value": {"x": 1}}}, "where.value: a value must be a string, number"),
    ({"where": {"not": {"has": "orders", "having": {"agg": "sum", "column": "amount;", "op": ">", "value": 1}}}},
     "where.not.having[0].column: 'amount;' is not a column name"),
    ({"parent": "orders"}, "parent: 'orders' is not a parent model (parents: users)"),
    ({"traits": [{"name": "total spend", "related": "orders"}]}, "traits[0].name: 'total spend' is not a column name"),
    ({"traits": [{"name": "n", "related": "ordrs"}]}, "traits[0].related: unknown model 'ordrs' (did you mean "
                                                      "'orders'?)"),
    ({"splits": {"groups": {"a": 50, "b": 40}}}, "splits.groups: percentages add up to 90, not 100"),
    # a number of days written as text compiles to nothing dbt can build
    ({"where": {"performed": "events", "last": {"op": "within last days", "value": "400"}}},
     "where.last: 'within last days' needs a number of days, not '400'"),
    ({"where": {"column": "signed_up", "op": "more than days ago", "value": True}},
     "where: 'more than days ago' needs a number of days, not True"),
]


def test_a_well_formed_audience_passes_unchanged():
    assert check_spec(OK, MODELS, PARENTS) is OK


@pytest.mark.parametrize(("change", "message"), MISTAKES, ids=[m for _, m in MISTAKES])
def test_each_mistake_is_one_line_naming_its_path(change, message):
    with pytest.raises(UserError) as raised:
        check_spec({**OK, **change}, MODELS, PARENTS)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value), str(raised.value)
