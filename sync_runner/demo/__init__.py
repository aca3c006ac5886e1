"""The plant-store example: the deterministic messy-data generator, working copies of the example project and
`dbt-studio demo`.

May import: sync, project, core (an entry point, like the CLI).
"""
