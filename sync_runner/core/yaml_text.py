"""YAML read with libyaml's parser when PyYAML has it, PyYAML's own otherwise.

A kept command reads five or six small YAML files on every run (dbt_project.yml, profiles.yml, packages.yml,
dbt_studio.yml) before it does anything: PyYAML's pure-Python parser took 1.4 ms for the benchmark project's five
files, libyaml's 0.2 ms, and real projects' files are longer. Both build the values with the same safe constructor
and resolver, so they are the same values. A text libyaml refuses is parsed again by PyYAML's parser, whose error
(and its line, column and wording) is the one users are told.
"""

from __future__ import annotations

from typing import Any

import yaml

_FAST: Any = getattr(yaml, "CSafeLoader", None)  # absent when PyYAML was built without libyaml


def safe_load(text: str) -> Any:
    """`yaml.safe_load(text)`."""
    if _FAST is not None:
        try:
            return yaml.load(text, Loader=_FAST)  # (the safe constructor, in C)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)
