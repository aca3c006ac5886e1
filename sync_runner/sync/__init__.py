"""Syncs (macros/sync): configuration of syncs and destinations, the engine that plans in the warehouse, delivers
changed rows and commits what was acknowledged, delivery (batching, retries, concurrency), `build` (dbt build then
sync) and destinations/ (one module per destination).

Imports run engine / orchestrate -> config / delivery -> destinations; the package may import project and core.
"""
