"""No traceback for any user mistake, on any command: valid configurations of the shop project (tests/projects/shop)
are mutated the way users get them wrong, and each command run on the result must answer with one line naming the
file, the model and the key, exit 2 for a configuration error (1 for data problems), print no traceback, and change
no state (the run log aside: a sync that was skipped or stopped is recorded there, with its reason).

Each mutation edits the project's real files and runs `dbt parse`, so the manifest is what dbt makes of them
(YAML 1.1 included), parsing partially as dbt does by default (the files differ from the last parse's, so dbt
reads them again: a full parse per mutation made this test four times as long); the commands run in-process
through the CLI's entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sync_runner.sync.engine import run_syncs

from helpers import ADAPTERS
from helpers.cli import run_cli

SHOP = Path(__file__).resolve().parents[1] / "projects" / "shop"
MARTS = "models/marts/_marts.yml"
YML = "dbt_studio.yml"
CRM = "  crm:\n    type: http\n    url: https://crm.invalid/records\n" \
      "    headers: {Authorization: \"Bearer {{ env_var('SHOP_CRM_TOKEN_UNSET') }}\"}\n"


@dataclass(frozen=True)
class Mutation:
    case: str
    edits: tuple[tuple[str, str, str], ...]  # (file, old, new): `old` must be in the file ("": a new file)
    # command args -> (exit code, text(s) the one error line must hold); "" for exit 0 (no error line)
    expect: dict[tuple[str, ...], tuple[int, str | tuple[str, ...]]] = field(default_factory=dict)


MUTATIONS = [
    Mutation("mapping typo", ((MARTS, "customer: customer_id, revenue", "customer: customer_idd, revenue"),), {
        ("validate",): (2, f"{MARTS}: model 'customer_features': meta.dbt_studio.syncs[0].mappings.customer: "
                           "unknown column 'customer_idd' of model 'customer_features' (columns of the relation"),
        ("sync", "-s", "big_spenders"): (2, f"{MARTS}: model 'customer_features': sync 'big_spenders' maps unknown "
                                            "column 'customer_idd' (did you mean 'customer_id'?)"),
    }),
    Mutation("unknown key in a sync", ((MARTS, "              mode: upsert\n",
                                        "              mode: upsert\n              batchsize: 10\n"),), {
        ("validate",): (2, f"{MARTS}: model 'customer_features': meta.dbt_studio.syncs[0].batchsize: unknown key "
                           "'batchsize'"),
        ("sync",): (2, f"{MARTS}: model 'customer_features': meta.dbt_studio.syncs[0].batchsize: unknown key "
                       "'batchsize'"),
        ("plan",): (2, "syncs[0].batchsize: unknown key 'batchsize'"),
    }),
    Mutation("wrong type of a sync option", ((MARTS, "              mode: mirror\n",
                                              "              mode: mirror\n              include_holdout: some\n"),), {
        ("validate",): (2, f"{MARTS}: model 'pro_buyers': meta.dbt_studio.syncs[0].include_holdout: must be true or "
                           "false, not 'some'"),
        ("sync",): (2, "syncs[0].include_holdout: must be true or false"),
    }),
    Mutation("split group typo", ((MARTS, "              mode: mirror\n",
                                   "              mode: mirror\n              split_groups: [treatmnt]\n"),), {
        ("validate",): (2, f"{MARTS}: model 'pro_buyers': meta.dbt_studio.syncs[0].split_groups: unknown split group "
                           "'treatmnt' (groups: treatment, holdout); did you mean 'treatment'?"),
    }),
    Mutation("filter on a misspelled column", ((MARTS, "{column: revenue,", "{column: revenu,"),), {
        ("validate",): (2, f"{MARTS}: model 'customer_features': meta.dbt_studio.syncs[0].filter: unknown column "
                           "'revenu'"),
        ("sync", "-s", "big_spenders"): (2, "sync 'big_spenders' selects rows by unknown column 'revenu' "
                                            "(did you mean 'revenue'?)"),
    }),
    Mutation("filter with an unknown operator", ((MARTS, "op: '>='", "op: 'greater'"),), {
        ("validate",): (2, f"{MARTS}: model 'customer_features': meta.dbt_studio.syncs[0].filter.op: unknown "
                           "operator 'greater'"),
    }),
    Mutation("primary key misspelled", ((MARTS, "primary_key: main_id\n          labels",
                                         "primary_key: mainid\n          labels"),), {
        ("validate",): (2, (f"{MARTS}: model 'customer_features': ", "primary_key: unknown column 'mainid'",
                            "columns of the relation")),
    }),
    Mutation("unquoted cardinality", ((MARTS, 'cardinality: "1:many"', "cardinality: 1:1"),), {
        ("validate",): (2, (f"{MARTS}: model 'customer_features': ", "relationships[0].cardinality",
                            "quote it")),
        ("schema",): (0, ""),
    }),
    Mutation("relationship to a model that does not exist", ((MARTS, "to: stg_orders", "to: stg_order"),), {
        ("validate",): (2, (f"{MARTS}: model 'customer_features': ",
                            "unknown model 'stg_order' (did you mean 'stg_orders'?)")),
    }),
    Mutation("a relationship to and a sync of a disabled model", (
        ("models/staging/stg_returns.sql", "", "{{ config(enabled=false) }}\nselect 1 as return_id, "
                                               "'a@example.com' as email\n"),
        ("models/staging/_returns.yml", "", "version: 2\nmodels:\n  - name: stg_returns\n    config:\n"
                                            "      meta:\n        dbt_studio:\n          primary_key: return_id\n"
                                            "          syncs:\n            - {name: returns_crm, destination: "
                                            "crm_file, mode: upsert, mappings: {email: email}}\n"),
        (MARTS, "            - {name: orders, to: stg_orders,",
         "            - {name: returns, to: stg_returns, cardinality: \"1:many\", join: {email: email}}\n"
         "            - {name: orders, to: stg_orders,")), {
        ("validate",): (2, f"{MARTS}: model 'customer_features': relationship 'returns': model 'stg_returns' is "
                           "disabled (enabled: false, models/staging/stg_returns.sql); enable it or remove the "
                           "relationship"),
        ("audience", "preview", "pro_buyers"): (2, f"{MARTS}: model 'pro_buyers': dbt_studio: model "
                                                   "'customer_features': relationship 'returns': model 'stg_returns' "
                                                   "is disabled (enabled: false, models/staging/stg_returns.sql)"),
        ("audience", "preview", "stg_returns"): (2, "model 'stg_returns' is disabled (enabled: false, "
                                                    "models/staging/stg_returns.sql)"),
        ("sync", "-s", "returns_crm"): (2, "models/staging/_returns.yml: sync 'returns_crm': model 'stg_returns' is "
                                           "disabled (enabled: false, models/staging/stg_returns.sql); enable it or "
                                           "remove the sync"),
        ("plan", "-s", "stg_returns"): (2, "sync 'returns_crm': model 'stg_returns' is disabled"),
        ("sync", "-s", "big_spenders"): (0, ""),
    }),
    Mutation("audience condition on a misspelled column", (
        ("models/marts/pro_buyers.sql", "{'column': 'plan', 'op': 'in'", "{'column': 'plann', 'op': 'in'"),), {
        ("validate",): (2, "models/marts/pro_buyers.sql: model 'pro_buyers': dbt_studio.audience.where.and[0].column: "
                           "unknown column 'plann' of model 'customer_features' (columns of the relation: "),
        ("audience", "preview", "pro_buyers"): (2, "models/marts/pro_buyers.sql: model 'pro_buyers': "
                                                   "dbt_studio: audience 'pro_buyers': "
                                                   "where.and[0].column: unknown column 'plann' of model "
                                                   "'customer_features' (columns of the relation"),
    }),
    Mutation("audience condition value the column's type cannot take", (
        ("models/marts/pro_buyers.sql", "{'column': 'plan', 'op': 'in', 'value': ['pro', 'team']}",
         "{'column': 'revenue', 'op': '>', 'value': 'lots'}"),), {
        ("validate",): (2, "models/marts/pro_buyers.sql: model 'pro_buyers': dbt_studio.audience.where.and[0].value: "
                           "'lots' is not a number, and column 'revenue' of model 'customer_features' is "),
        ("audience", "preview", "pro_buyers"): (2, "models/marts/pro_buyers.sql: model 'pro_buyers': dbt_studio: "
                                                   "audience 'pro_buyers': where.and[0].value: 'lots' is not a "
                                                   "number, and column 'revenue' of model 'customer_features' is "),
    }),
    Mutation("audience condition value a timestamp column cannot take", (
        ("models/marts/pro_buyers.sql", "{'column': 'status', 'op': '=', 'value': 'paid'}",
         "{'column': 'ordered_at', 'op': '>', 'value': 'yesterday'}"),), {
        ("validate",): (0, ""),  # only number columns are checked before the warehouse runs the condition
        ("audience", "preview", "pro_buyers"): (2, ("models/marts/pro_buyers.sql: model 'pro_buyers': the warehouse "
                                                    "refused its preview: ", "yesterday")),
    }),
    Mutation("filter value the column's type cannot take", ((MARTS, "value: 100}", "value: a hundred}"),), {
        ("validate",): (2, (f"{MARTS}: model 'customer_features': ", "syncs[0].filter.value: 'a hundred' is not a "
                            "number, and column 'revenue' of model 'customer_features' is ")),
        ("sync", "-s", "big_spenders"): (1, (f"{MARTS}: model 'customer_features': sync 'big_spenders': the "
                                             "warehouse refused its plan: ", "a hundred",
                                             "check its filter against the model's values")),
        ("plan", "-s", "big_spenders"): (1, "sync 'big_spenders': the warehouse refused its plan: "),
    }),
    Mutation("audience condition on a misspelled column of a related model", (
        ("models/marts/pro_buyers.sql", "{'column': 'status', 'op': '='", "{'column': 'state', 'op': '='"),), {
        ("validate",): (2, "models/marts/pro_buyers.sql: model 'pro_buyers': dbt_studio.audience.where.and[1].where."
                           "column: unknown column 'state' of model 'stg_orders' (columns of the relation: "),
    }),
    Mutation("a model without YAML with a misspelled primary key", (
        ("models/staging/stg_customers.sql", "select\n",
         "{{ config(meta={'dbt_studio': {'model_type': 'related', 'primary_key': 'customer_idd'}}) }}\nselect\n"),), {
        ("validate",): (2, ("models/staging/stg_customers.sql: model 'stg_customers': ",
                            "primary_key: unknown column 'customer_idd'", "columns of the relation")),
        ("schema",): (0, ""),
    }),
    Mutation("unset env var of one destination", (
        (YML, "destinations:\n", "destinations:\n" + CRM),
        (MARTS, "destination: crm_file\n              mode: mirror",
         "destination: crm\n              mode: mirror")), {
        ("validate",): (2, f"{YML}: destinations.crm.headers.Authorization: env var 'SHOP_CRM_TOKEN_UNSET' is not set"),
        ("sync",): (2, f"pro_buyers_crm: not run: <root>/{YML}: destinations.crm.headers.Authorization: env var "
                       "'SHOP_CRM_TOKEN_UNSET' is not set"),
        ("sync", "-s", "big_spenders"): (0, ""),
        ("plan",): (2, "pro_buyers_crm: not run:"),
        ("status",): (0, ""),
        ("schema",): (0, ""),
    }),
    Mutation("a URL with a scheme that is not http(s)", (
        (YML, "destinations:\n", "destinations:\n  hook:\n    type: http\n    url: htp://crm.invalid/records\n"),
        (MARTS, "destination: crm_file\n              mode: mirror",
         "destination: hook\n              mode: mirror")), {
        ("validate",): (2, (f"{YML}: destinations.hook.url: ",)),
        ("sync", "-s", "pro_buyers_crm"): (2, ("pro_buyers_crm: not run: ", f"{YML}: destinations.hook.url: ")),
        ("sync", "-s", "big_spenders"): (0, ""),
    }),
]


# On Snowflake (fakesnow) a mutation costs several times what it costs on DuckDB (the whole list: about 5 minutes
# more), so the mutations whose answer comes from the warehouse run there: columns read from the relation (a mapping,
# a filter, a primary key of a model without YAML) and an audience compiled against it.
ON_SNOWFLAKE = ("mapping typo", "filter on a misspelled column", "audience condition on a misspelled column",
                "a model without YAML with a misspelled primary key", "filter value the column's type cannot take",
                "audience condition value the column's type cannot take")


def _cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, root: Path, *args: str) -> tuple:
    return run_cli(capsys, monkeypatch, *args, "--project-dir", str(root))


def _state(project) -> dict[str, list]:
    """Every state table but the run log, and the files the syncs wrote."""
    wh = project.warehouse()
    try:
        with wh.session():
            schema = wh.call("sync_default_state_schema")
            _, tables = wh.adapter.execute(f"select table_name from information_schema.tables where "
                                           f"lower(table_schema) = lower('{schema}') and lower(table_name) <> "
                                           "'sync_runs' order by 1", fetch=True)
            out = {}
            for (name,) in tables.rows:
                _, rows = wh.adapter.execute(f"select * from {wh.relation(None, schema, name)}", fetch=True)
                out[name] = sorted(repr(tuple(r.values())) for r in rows.rows)
    finally:
        wh.close()
    out["files"] = sorted(p.name for p in (project.root / "synced").glob("*"))
    return out


@pytest.fixture(scope="module", params=ADAPTERS)
def shop(request, new_project):
    project = new_project(request.param, name="mutations", source=SHOP)
    project.dbt("build")
    assert {r.status for r in run_syncs(project.root, project.root)} == {"success"}
    return project


def test_every_mutation_is_one_line_with_the_right_exit_code_and_changes_nothing(shop, capsys, monkeypatch):
    monkeypatch.setenv("DBT_PROFILES_DIR", str(shop.root))
    monkeypatch.delenv("SHOP_CRM_TOKEN_UNSET", raising=False)
    before = _state(shop)
    manifest = shop.root / "target" / "manifest.json"
    saved_manifest = manifest.read_bytes()
    failures = []
    mutations = MUTATIONS if shop.adapter == "duckdb" else [m for m in MUTATIONS if m.case in ON_SNOWFLAKE]
    assert shop.adapter == "duckdb" or len(mutations) == len(ON_SNOWFLAKE)
    for mutation in mutations:
        saved: dict[Path, str | None] = {}
        for name, old, new in mutation.edits:
            path = shop.root / name
            saved.setdefault(path, path.read_text(encoding="utf-8") if path.exists() else None)
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            assert old in text, (mutation.case, name, old)
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
        try:
            shop.dbt("parse")
            for args, (code, text) in mutation.expect.items():
                got, out, err = _cli(capsys, monkeypatch, shop.root, *args)
                lines = [line for line in err.splitlines()  # (a warning is not a problem: the exit code says so)
                         if line.strip() and not line.startswith(("note:", "warning:"))]
                texts = [t.replace("<root>", str(shop.root)) for t in ((text,) if isinstance(text, str) else text)]
                ok = got == code and "Traceback" not in out + err
                if code == 0:
                    ok = ok and not [line for line in lines if line.startswith("error")]
                else:
                    ok = ok and len(lines) == 1 and all(t in lines[0] for t in texts)
                if not ok:
                    failures.append((mutation.case, args, got, lines[-3:] or out[-300:]))
        finally:
            for path, text in saved.items():
                if text is None:
                    path.unlink()
                else:
                    path.write_text(text, encoding="utf-8")
            manifest.write_bytes(saved_manifest)
    assert failures == [], "\n".join(map(repr, failures))
    assert _state(shop) == before  # every mistake was found before anything was planned or sent
