"""Syncs (macros/sync): configuration of syncs and destinations, the engine that plans in the warehouse, delivers
changed rows and commits what was acknowledged, its warehouse steps (state: through dbt or from kept SQL), delivery
(batching, retries, concurrency), `build` (dbt build then sync) and destinations/ (one module per destination).

Imports run engine / orchestrate -> config / delivery / state -> destinations; the package may import project and
core.
"""
