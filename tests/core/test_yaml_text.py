"""YAML read with libyaml's parser: the values PyYAML's own parser gives, and its errors."""

from __future__ import annotations

import pytest
import yaml

from sync_runner.core import yaml_text

DOCUMENTS = [
    "name: shop\nversion: '1.0'\nprofile: shop\nmodel-paths: [models, marts]\n",
    "a: 1\nb: 1.5\nc: true\nd: no\ne: null\nf: ~\ng: 2024-06-01\nh: 2024-06-01 08:30:00\ni: 0o17\nj: 0x1F\n",
    "base: &base {type: http, url: 'https://x.example.com'}\nhook:\n  <<: *base\n  batch_size: 500\n",
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\nquoted: \"é漢字 \\u00e9 \\t\"\n",
    "- 1\n- [2, 3]\n- {k: v}\n- '{{ env_var(\"TOKEN\") }}'\n",
    "",
    "just a string",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_values_are_pyyamls(text):
    assert yaml_text.safe_load(text) == yaml.safe_load(text)
    assert type(yaml_text.safe_load(text)) is type(yaml.safe_load(text))


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a:\n  b: 1\n   c: 2\n", "a: b: c\n", "key: 'open\n",
                                  "!!python/object:os.system x\n"])
def test_an_error_is_pyyamls(text):
    with pytest.raises(yaml.YAMLError) as expected:
        yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError) as got:
        yaml_text.safe_load(text)
    assert str(got.value) == str(expected.value)
    assert type(got.value) is type(expected.value)


def test_libyaml_parses_when_pyyaml_has_it():
    """(The speed is the point: with libyaml the C loader is the one used.)"""
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    assert yaml_text._FAST is yaml.CSafeLoader
