"""dbt-studio's Python half: reads dbt artifacts, plans syncs in the warehouse, delivers changes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dbt-studio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
