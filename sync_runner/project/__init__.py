"""The user's dbt project: which project/profile/target a command runs against, its artifacts (manifest.json,
run_results.json) and the warehouse connection through dbt's adapter, on which every package macro runs.

May import: core. Nothing here knows about syncs, destinations or audiences.
"""
