"""What `tests/conftest.py` changes in dbt to make the suite faster leaves dbt's results as they were."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_shared_static_parse_environment_parses_every_macro_as_a_new_one():
    from dbt.clients import jinja_static
    from dbt_common.clients.jinja import get_environment

    shared = jinja_static.get_environment(None, capture_macros=True)
    assert shared is jinja_static.get_environment(None, capture_macros=True)
    sources = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "macros").rglob("*.sql"))]
    assert len(sources) > 30
    for source in sources:
        assert shared.parse(source) == get_environment(None, capture_macros=True).parse(source)


# -- dbt's event messages -----------------------------------------------------------------------------------------

def _event_classes() -> list[type]:
    """Every event message type of dbt, its adapters and dbt_common (the messages dbt fills from keywords)."""
    from dbt.adapters.events import adapter_types_pb2
    from dbt.events import core_types_pb2
    from dbt_common.events import types_pb2

    return [cls for module in (types_pb2, core_types_pb2, adapter_types_pb2)
            for name, cls in sorted(vars(module).items())
            if isinstance(cls, type) and hasattr(cls, "DESCRIPTOR") and not name.startswith("_")]


def _sample(field, depth: int = 0):
    """A value of `field`'s JSON shape, or None where there is none to give (too deep)."""
    from google.protobuf.descriptor import FieldDescriptor as F

    if field.cpp_type == F.CPPTYPE_MESSAGE:
        entry = field.message_type
        if entry.GetOptions().map_entry:
            return {"k1": _sample(entry.fields_by_name["value"], depth), "k 2": _sample(entry.fields_by_name["value"],
                                                                                         depth)}
        known = {"google.protobuf.Struct": {"a": 1, "b": [1.5, "x", None, {"c": True}]},
                 "google.protobuf.Timestamp": "2026-12-03T01:02:03.456789Z", "google.protobuf.Value": [1, "v"],
                 "google.protobuf.ListValue": [1, "x"], "google.protobuf.Duration": "1.5s"}
        if entry.full_name in known:
            value = known[entry.full_name]
        elif depth > 2:
            return None
        else:
            value = {f.name: v for f in entry.fields if (v := _sample(f, depth + 1)) is not None}
    else:
        value = {F.CPPTYPE_STRING: "text é 🌱" if field.type == F.TYPE_STRING else "aGk=", F.CPPTYPE_BOOL: True,
                 F.CPPTYPE_DOUBLE: 2.5, F.CPPTYPE_FLOAT: 0.25, F.CPPTYPE_ENUM: 1}.get(field.cpp_type, 7)
    return [value, value] if field.is_repeated else value


def _variants(cls) -> list[dict]:
    """A message with every field set, then with one field at a time made null, of another type, out of range or
    named in JSON style, plus an unknown field: what ParseDict accepts and what it refuses."""
    import enum

    class Status(str, enum.Enum):  # dbt passes str enums (RunStatus, ConnectionState) to string fields
        SUCCESS = "success"

    full = {f.name: v for f in cls.DESCRIPTOR.fields if (v := _sample(f)) is not None}
    out = [full, {}, {**full, "no_such_field": 1}]
    for field in cls.DESCRIPTOR.fields:
        for other in (None, "7", 7, 2.0, 1.5, True, Status.SUCCESS, "\ud800", 2**40, 3.5e38, float("nan"), {}, [],
                      {"x": None}):
            out.append({**full, field.name: other})
        if field.json_name != field.name and field.name in full:
            out.append({k if k != field.name else field.json_name: v for k, v in full.items()})
    return out


def _outcome(parse, js, cls):
    try:
        message = parse(js, cls())
    except Exception as exc:  # noqa: BLE001 - the error is part of what must be the same
        return ("error", type(exc).__name__, str(exc))
    return ("message", message, message.SerializeToString(deterministic=True))


def test_event_messages_are_the_ones_json_format_builds():
    """Every dbt event type, filled fully, then field by field with nulls, other types, values out of range and
    JSON names: the harness's parser builds what ParseDict builds, or raises what it raises."""
    from dbt_common.events import base_types
    from google.protobuf import json_format

    from helpers import event_messages

    assert base_types.ParseDict is event_messages.parse_dict  # installed by conftest
    classes = _event_classes()
    assert len(classes) > 300
    compared, fast = 0, []
    for cls in classes:
        for js in _variants(cls):
            want = _outcome(json_format.ParseDict, js, cls)
            assert _outcome(event_messages.parse_dict, js, cls) == want, (cls.__name__, js)
            compared += 1
        try:  # whether the harness's parser built the full message itself (the point of it), not via ParseDict
            event_messages._fill(_variants(cls)[0], cls())
            fast.append(cls.__name__)
        except Exception:  # noqa: BLE001
            pass
    assert compared > 10_000 and len(fast) > len(classes) * 0.9, (compared, len(fast), len(classes))
    assert {"SQLQuery", "SQLQueryStatus", "NodeFinished", "LogModelResult", "EventInfo"} <= set(fast)


# -- dbt's macro namespaces ---------------------------------------------------------------------------------------

def _shape(value, ctx: dict, stack, depth: int = 0) -> object:
    """A context value as something comparable across two contexts: a generator by its macro and by whether it
    is bound to its own context and macro stack; a namespace dict by its keys in order and their shapes."""
    from dbt.clients.jinja import MacroGenerator

    if type(value) is MacroGenerator:
        return ("generator", value.macro.unique_id, value.context is ctx, value.stack is stack, value.node,
                sorted(vars(value)))
    if value is ctx:
        return ("the context",)
    if type(value) is dict:
        if depth > 2:
            return ("dict", list(value))
        return ("dict", [(k, _shape(v, ctx, stack, depth + 1)) for k, v in value.items()])
    return ("value", type(value).__name__)


def _context_shapes(generate, args: tuple) -> tuple:
    from dbt.context import manifest as manifest_context

    made = []
    original = manifest_context.ManifestContext._build_namespace

    def kept(self):  # the context object, to reach its namespace and macro stack
        made.append(self)
        return original(self)

    manifest_context.ManifestContext._build_namespace = kept
    try:
        ctx = generate(*args)
    finally:
        manifest_context.ManifestContext._build_namespace = original
    owner = made[-1]
    ns = owner.namespace
    parts = {"globals": ns.global_namespace, "locals": ns.local_namespace, "packages": ns.packages,
             "internal": ns.global_project_namespace}
    return ({k: _shape(v, owner._ctx, owner.macro_stack) for k, v in parts.items()},
            sorted((k, _shape(v, owner._ctx, owner.macro_stack)) for k, v in ctx.items()))


def test_macro_namespaces_are_the_ones_dbt_builds(built_example):
    """A macro's and a model's context of the plant store, built with the harness's namespace builder and with
    dbt's own: the same keys, the same generators bound the same way, the same namespace dicts in the same order."""
    from dbt.context import macros, providers
    from dbt.context import manifest as manifest_context

    from helpers import macro_namespace

    assert macros.MacroNamespaceBuilder.build_namespace is macro_namespace.build_namespace  # installed
    plant_store = built_example("duckdb")  # (the namespaces do not depend on the adapter's dialect)
    m = plant_store.dbt("parse").result  # dbt's own Manifest of the project (a partial parse: it was built)
    wh = plant_store.warehouse()
    config = wh.config
    wh.close()
    node = next(n for n in m.nodes.values() if n.resource_type == "model")
    cases = [(providers.generate_runtime_macro_context,
              (m.find_macro_by_name("drop_relation", config.project_name, None), config, m, None)),
             (providers.generate_runtime_macro_context,
              (m.find_macro_by_name("create_schema", config.project_name, None), config, m, "dbt_studio")),
             (providers.generate_runtime_model_context, (node, config, m))]
    assert len(m.macros) > 500
    for generate, args in cases:
        ours = _context_shapes(generate, args)
        originals = (macros.MacroNamespaceBuilder.build_namespace, manifest_context.ManifestContext.to_dict)
        macros.MacroNamespaceBuilder.build_namespace = macro_namespace.ORIGINAL_BUILD
        manifest_context.ManifestContext.to_dict = macro_namespace.ORIGINAL_TO_DICT
        try:
            theirs = _context_shapes(generate, args)
        finally:
            macros.MacroNamespaceBuilder.build_namespace, manifest_context.ManifestContext.to_dict = originals
        assert ours == theirs
        assert sum(1 for _, s in ours[1] if s[0] == "generator") > 500  # the macros are in the context


def test_a_flat_namespace_answers_each_key_as_dbt_s_search_order_does():
    """Names defined at several levels (the node's package, the root project, other packages, dbt's own): the
    merged dict gives what `MacroNamespace[key]` gives."""
    from dbt.context.macros import MacroNamespace

    from helpers import macro_namespace

    levels = ("local", "global", "package", "internal")
    names = ["a", "b", "c", "d", "dbt", "dbt_studio"]
    for mask in range(1, 2 ** (len(levels) * 2)):  # which levels define "a" and "dbt" (the others: fixed)
        spaces = {level: {"b": f"{level}.b"} if level != "global" else {"c": "global.c"} for level in levels}
        for i, level in enumerate(levels):
            if mask >> i & 1:
                spaces[level]["a"] = f"{level}.a"
            if mask >> (i + len(levels)) & 1:
                spaces[level]["dbt"] = f"{level}.dbt"
        spaces["internal"]["d"] = "internal.d"
        spaces["package"]["dbt_studio"] = {"x": "package.x"}
        ns = MacroNamespace(global_namespace=spaces["global"], local_namespace=spaces["local"],
                            global_project_namespace=spaces["internal"], packages=spaces["package"])
        merged = macro_namespace.flat(ns)
        assert merged == {k: ns[k] for k in ns}, mask
        assert set(merged) >= set(names) - ({"a"} if not mask & 15 else set())


# -- processes forked from the CLI server -------------------------------------------------------------------------

def test_a_forked_process_behaves_as_a_popen_of_the_same_command(tmp_path):
    """What the studio's jobs and the killed syncs see of their process: arguments, working directory,
    environment, merged output, exit code; lines that arrive while it runs (PYTHONUNBUFFERED); -9 when killed."""
    import os
    import subprocess
    import sys

    from helpers.cli_process import ForkedProcess

    code = ("import os, sys, time\n"
            "print('out', sys.argv[1:], os.getcwd(), os.environ.get('X'), sys.stdin.read())\n"
            "print('err', file=sys.stderr)\n"
            "print('more')\n"
            "if sys.argv[1] == 'wait':\n"
            "    while not os.path.exists('go'): time.sleep(0.01)\n"
            "sys.exit(int(sys.argv[2]))\n")
    env = {**os.environ, "X": "y é"}
    seen = {}
    for spawn in (subprocess.Popen, ForkedProcess):
        for unbuffered in ("", "1"):
            proc = spawn([sys.executable, "-c", code, "now", "3", "b c"], cwd=tmp_path,
                         env={**env, "PYTHONUNBUFFERED": unbuffered}, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, bufsize=1)
            seen[spawn.__name__, unbuffered] = (proc.stdout.read(), proc.wait())
        live = spawn([sys.executable, "-c", code, "wait", "0"], cwd=tmp_path, env={**env, "PYTHONUNBUFFERED": "1"},
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        first = live.stdout.readline()  # written while the process waits for `go`
        (tmp_path / "go").write_text("")
        seen[spawn.__name__, "live"] = (first, live.stdout.read(), live.wait())
        (tmp_path / "go").unlink()
        killed = spawn([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert killed.stdout.readline() == "up\n" and killed.poll() is None
        killed.send_signal(9)
        seen[spawn.__name__, "killed"] = killed.wait()
    for key in ("", "1", "live", "killed"):
        assert seen["ForkedProcess", key] == seen["Popen", key], key
    assert seen["Popen", "1"] == (f"out ['now', '3', 'b c'] {tmp_path} y é \nerr\nmore\n", 3)
    assert seen["Popen", "live"][0].startswith("out ['wait', '0'] ") and seen["Popen", "killed"] == -9
