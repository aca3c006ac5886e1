"""dbt-studio's Python half: reads dbt artifacts, plans syncs in the warehouse, delivers changes.

One subpackage per capability, mirroring macros/; imports run one way (tests/test_layering.py holds it):

    cli, serve/, demo/, validate   entry points: thin shells over the library
    sync/                          engine and build -> config, delivery -> destinations/
    audiences/                     the declared schema graph, its checks, previews
    project/                       target resolution, dbt artifacts, the warehouse connection
    core/                          errors, redaction, paths, rate limiting (imports nothing of ours)
"""

# The one place the version is written: pyproject.toml reads it from here (setuptools' `attr:`, without importing),
# and the package's dbt_project.yml must match it (tests/project/test_packages.py). A constant, not
# importlib.metadata: scanning the installed distributions cost 35 ms of every command's start (commands with kept
# SQL still read a few distributions' versions for its fingerprint: project/compiled.py).
__version__ = "0.1.0"

from sync_runner.core import kept_code  # noqa: E402  (every dataclass of the package is made after this)

kept_code.install()
