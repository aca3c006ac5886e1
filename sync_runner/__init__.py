"""dbt-studio's Python half: reads dbt artifacts, plans syncs in the warehouse, delivers changes.

One subpackage per capability, mirroring macros/; imports run one way (tests/test_layering.py holds it):

    cli, serve/, demo/, validate   entry points: thin shells over the library
    sync/                          engine and build -> config, delivery -> destinations/
    audiences/                     the declared schema graph, its checks, previews
    project/                       target resolution, dbt artifacts, the warehouse connection
    core/                          errors, redaction, paths, rate limiting (imports nothing of ours)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dbt-studio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
