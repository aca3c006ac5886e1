"""What the studio's pages and JSON routes show, computed from the catalog and the queries (no Starlette here,
so tests call it directly)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from sync_runner.core.errors import UserError
from sync_runner.core.redact import REDACT
from sync_runner.project.target import error_line, held_elsewhere

from . import builder
from .files import (
    Expr,
    NotEditable,
    check_name,
    confine_folder,
    confined,
    delete_audience,
    digest_of,
    parse_audience,
    refuse_repeated_keys,
    rename_audience,
    save_audience,
    set_yaml_description,
)

if TYPE_CHECKING:
    from .app import Studio
    from .catalog import AudienceInfo
    from .files import AudienceFile


def one_line(exc: BaseException) -> str:
    """The first meaningful line of an error (dbt's compilation errors carry a header and a stack); a DuckDB file
    another process holds is said in words a marketer can act on (wait, then look again), not as DuckDB's lock
    line."""
    held = held_elsewhere(exc)
    if held:
        return REDACT(f"the warehouse is busy: {held} (a `dbt build`, a sync or another studio); "
                      "try again once it is done")
    for line in str(exc).splitlines():
        if "dbt_studio:" in line:
            return REDACT(line[line.index("dbt_studio:"):].strip())
    return REDACT(error_line(exc))


# -- schema -------------------------------------------------------------------------------------------------------


def schema_models(nodes: dict[str, dict[str, Any]], graph: Any) -> list[dict[str, Any]]:
    out = []
    for name in sorted(graph.models):
        meta = graph.models[name]
        rels = [{"to": r.to, "cardinality": r.cardinality, "through": r.through, "pairs": r.pairs,
                 "merge": bool(r.merge_columns), "declared": r.declared} for r in graph.of(name)]
        out.append({"name": name, "type": meta.get("model_type") or "model", "primary_key": meta.get("primary_key"),
                    "labels": meta.get("labels"), "timestamp": meta.get("timestamp"), "relationships": rels,
                    "audience": bool(nodes.get(name, {}).get("audience"))})
    return out


def schema_svg(graph: Any) -> str:
    """The schema as an SVG: parents in the first column, each model one column right of the model that first
    reaches it; direct relationships as lines labelled with their cardinality, through ones dashed."""
    depth: dict[str, int] = {}
    order = list(graph.parents()) or sorted(graph.models)
    for p in order:
        depth.setdefault(p, 0)
    frontier = list(order)
    while frontier:
        nxt = []
        for m in frontier:
            for r in sorted(graph.of(m), key=lambda r: r.to):
                if r.through is None and r.to in graph.models and r.to not in depth:
                    depth[r.to] = depth[m] + 1
                    nxt.append(r.to)
        frontier = nxt
    for m in sorted(graph.models):
        depth.setdefault(m, 0 if not depth else max(depth.values()) + 1)
    columns: dict[int, list[str]] = {}
    for m, d in sorted(depth.items(), key=lambda kv: (kv[1], kv[0])):
        columns.setdefault(d, []).append(m)
    box_w, box_h, gap_x, gap_y = 190, 44, 110, 26
    pos = {m: (20 + d * (box_w + gap_x), 20 + i * (box_h + gap_y)) for d, ms in columns.items()
           for i, m in enumerate(ms)}
    width = 40 + (max(columns) + 1) * (box_w + gap_x) if columns else 200
    height = 40 + max((len(ms) for ms in columns.values()), default=1) * (box_h + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="schema-graph" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="schema graph">']
    drawn = set()
    for r in graph.relationships:
        if not r.declared or r.source not in pos or r.to not in pos:
            continue
        pair = tuple(sorted((r.source, r.to))) + (r.through or "",)
        if pair in drawn:
            continue
        drawn.add(pair)
        (x1, y1), (x2, y2) = pos[r.source], pos[r.to]
        a = (x1 + box_w, y1 + box_h / 2) if x2 > x1 else (x1, y1 + box_h / 2)
        b = (x2, y2 + box_h / 2) if x2 > x1 else (x2 + box_w, y2 + box_h / 2)
        if x1 == x2:
            a, b = (x1 + box_w, y1 + box_h / 2), (x2 + box_w, y2 + box_h / 2)
        dash = ' stroke-dasharray="5 4"' if r.through else ""
        label = f"{r.cardinality} via {r.through}" if r.through else r.cardinality
        if r.merge_columns:
            label += " (merge)"
        parts.append(f'<line x1="{a[0]}" y1="{a[1]}" x2="{b[0]}" y2="{b[1]}" class="edge"{dash}/>')
        parts.append(f'<text x="{(a[0] + b[0]) / 2}" y="{(a[1] + b[1]) / 2 - 4}" class="edge-label" '
                     f'text-anchor="middle">{html.escape(label)}</text>')
    for m, (x, y) in pos.items():
        kind = graph.models[m].get("model_type") or "model"
        parts.append(f'<g class="node node-{html.escape(kind)}"><rect x="{x}" y="{y}" width="{box_w}" '
                     f'height="{box_h}" rx="6"/><text x="{x + 10}" y="{y + 19}" class="node-name">{html.escape(m)}'
                     f'</text><text x="{x + 10}" y="{y + 35}" class="node-kind">{html.escape(kind)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


# -- audiences ----------------------------------------------------------------------------------------------------


def audience_sizes(studio: Studio) -> list[dict[str, Any]]:
    """Each audience: size and split sizes (both counted on its built table), last build, syncs and their last
    status, history."""
    audiences = studio.catalog.audiences()
    sizes: dict[str, int | None] = {}
    errors: dict[str, str] = {}
    by_parent: dict[str, list[str]] = {}
    for a in audiences:
        by_parent.setdefault(a.parent, []).append(a.name)
    for parent, names in by_parent.items():
        try:
            result = studio.queries.overlap(parent, [{"in audience": n} for n in names])
            for i, n in enumerate(names):
                sizes[n] = result["matrix"][i][i]
        except Exception as exc:  # e.g. one of them is not built yet: ask one by one
            for n in names:
                try:
                    sizes[n] = studio.queries.overlap(parent, [{"in audience": n}])["matrix"][0][0]
                except Exception as one:
                    sizes[n] = None
                    errors[n] = one_line(one)
            del exc
    history: dict[str, dict[str, list[tuple[str, int]]]] = {}
    history_read = True
    try:
        for row in studio.queries.size_history().rows:
            audience, group, members, built_at = row
            history.setdefault(audience, {}).setdefault(group or "", []).append((str(built_at), int(members)))
    except Exception:  # the page says "cannot read", not "no recorded builds"
        history, history_read = {}, False
    runs, _ = recent_runs(studio, limit=200)
    last_run: dict[str, dict[str, Any]] = {}
    for r in runs:
        last_run.setdefault(str(r.get("sync_name")), r)
    out = []
    for a in audiences:
        splits = {}
        split_spec = (a.spec or {}).get("splits")
        if isinstance(split_spec, dict) and sizes.get(a.name) is not None:
            # counted on the built table, like the size: the definition may have changed since the build
            try:
                node = studio.catalog.nodes()[a.name]
                column = split_spec.get("column") or "split_group"
                counts = {str(v): int(n) for v, n in studio.queries.values(node["relation"], column, limit=1000).rows}
                splits = {g: counts.pop(str(g), 0) for g in split_spec.get("groups") or {}} | counts
            except Exception as exc:
                errors.setdefault(a.name, one_line(exc))
        error = errors.get(a.name)
        out.append({"audience": a, "size": sizes.get(a.name), "error": error, "splits": splits,
                    # "not built" only when the warehouse says the table is missing: a database another process
                    # holds (a `dbt build` running) or a host that does not answer is said as it is
                    "missing": error is not None and "does not exist" in error.lower(),
                    "history": history.get(a.name, {}), "history_read": history_read,
                    "syncs": [(s, (last_run.get(s) or {}).get("status") or "never run") for s in a.syncs]})
    return out


def builder_schema(studio: Studio) -> dict[str, Any]:
    """What builder.js needs: models (type, columns, relationships), parents, audiences by parent."""
    graph = studio.catalog.graph()
    nodes = studio.catalog.nodes()
    models = {}
    for name in sorted(graph.models):
        meta = graph.models[name]
        merged = []
        for r in graph.of(name):
            if r.merge_columns and r.cardinality in ("1:1", "many:1"):
                other = [c for c, _ in studio.columns(r.to)]
                chosen = other if r.merge_columns is True else (
                    [r.merge_columns] if isinstance(r.merge_columns, str) else list(r.merge_columns))
                merged += [f"{r.name}__{c}" for c in chosen]
        suggest = [c for c, m in (nodes[name].get("column_meta") or {}).items() if m.get("suggestions")]
        models[name] = {
            "type": meta.get("model_type") or "model", "columns": [list(c) for c in studio.columns(name)],
            "merged": merged, "suggest": suggest,
            "timestamp": meta.get("timestamp"), "labels": meta.get("labels"), "primary_key": meta.get("primary_key"),
            "relationships": [{"to": r.to, "cardinality": r.cardinality, "through": r.through}
                              for r in graph.of(name)],
        }
    audiences = [{"name": a.name, "parent": a.parent} for a in studio.catalog.audiences()]
    root = studio.settings.where.project_dir.resolve()
    folders = [str(f.relative_to(root)) for f in studio.catalog.folders()]
    return {"models": models, "parents": graph.parents(), "audiences": audiences, "folders": folders}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Expr):
        return {"$jinja": value.source}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$jinja"} and isinstance(value["$jinja"], str):
            return Expr(value["$jinja"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def opened_audience(studio: Studio, info: AudienceInfo, opened: AudienceFile) -> dict[str, Any]:
    """An audience file for the builder: its arguments (expressions marked), and the spec to preview with (the
    manifest's, where expressions such as var() are resolved)."""
    root = studio.settings.where.project_dir.resolve()
    locked = [k for k, v in opened.arguments.items() if isinstance(v, Expr) and k != "as_of"]
    return {
        "name": info.name, "editable": not locked, "locked": locked,
        "error": f"written with Jinja the builder cannot edit: {', '.join(locked)}" if locked else None,
        "arguments": _jsonable(opened.arguments), "as_of": (info.spec or {}).get("as_of"),
        "digest": opened.digest, "folder": str(opened.path.parent.resolve().relative_to(root)),
        "file": str(opened.path.resolve().relative_to(root)), "description": info.description,
    }


def spec_of(arguments: dict[str, Any], as_of: Any) -> dict[str, Any]:
    """The spec to preview: the arguments with expressions replaced by their compiled values."""
    spec = {k: v for k, v in arguments.items() if not isinstance(v, Expr)}
    if isinstance(arguments.get("as_of"), Expr):
        spec["as_of"] = as_of
    return spec


def overlap(studio: Studio, body: dict[str, Any], checked: Any) -> dict[str, Any]:
    """Overlap of the draft (if any) and the named audiences over one parent: labels, sizes and the matrix."""
    spec = body.get("spec")
    others = body.get("others") or []
    if not isinstance(others, list) or not all(isinstance(o, str) for o in others):
        raise UserError("others: a list of audience names")
    known = {a.name: a for a in studio.catalog.audiences()}
    trees: list[Any] = []
    labels: list[str] = []
    parent = None
    as_of = None
    if spec is not None:
        spec = checked(spec)
        parent, as_of = spec["parent"], spec.get("as_of")
        trees.append(spec.get("where"))
        labels.append(body.get("label") or "this audience")
    for name in others:
        if name not in known:
            raise UserError(f"unknown audience {name!r}")
        if parent is None:
            parent = known[name].parent
        if known[name].parent != parent:
            raise UserError(f"audience {name!r} is over {known[name].parent}, not {parent}")
        trees.append({"in audience": name})
        labels.append(name)
    if parent is None or not trees:
        raise UserError("nothing to compare: give a draft and/or audience names")
    result = studio.queries.overlap(parent, trees, as_of, key=f"overlap:{body.get('session', '')}")
    return {"labels": labels, **result}


def _opened_file(studio: Studio, name: str, folder: Any) -> AudienceFile:
    """The file the builder opened: the manifest's audience, else (saved by the builder, not built yet) the file
    of that name in the save's folder."""
    try:
        return studio.catalog.open_file(name)
    except NotEditable:
        raise
    except OSError:  # the manifest's file renamed or deleted since the last build
        raise UserError(f"{name}: its file is not where the last build found it (renamed or deleted?); build the "
                        "project again, then open it again") from None
    except UserError:
        path = confined(studio.settings.where.project_dir, folder / f"{name}.sql")
        if not path.is_file():
            raise
        return parse_audience(path)


def save(studio: Studio, body: dict[str, Any], checked: Any) -> dict[str, Any]:
    """Save the builder's audience (see files.save_audience); returns the paths written, relative, and the saved
    file's digest (what the builder sends with its next save of the same file).

    An existing audience is saved over only by the page that opened it (`opened` and the `digest` it was given);
    a draft named like another audience is refused, whatever `overwrite` says."""
    name = check_name(body.get("name"))
    folder = confine_folder(studio.settings.where.project_dir, studio.catalog.folders(), body.get("folder"))
    root = studio.settings.where.project_dir.resolve()
    refuse_repeated_keys(body.get("arguments"), str(confined(root, folder / f"{name}.sql").relative_to(root)))
    arguments = _from_json(body.get("arguments"))
    if not isinstance(arguments, dict):
        raise UserError("arguments: expected an object")
    checked(spec_of(arguments, body.get("as_of")))
    original = None
    opened_name = body.get("opened")
    if opened_name:
        opened_name = check_name(opened_name)
        if not body.get("digest"):
            raise UserError(f"{opened_name}: the digest of the opened file is missing: open it again")
        original = _opened_file(studio, opened_name, folder)
        if body["digest"] != original.digest:
            raise UserError(f"{original.path.name} changed on disk since it was opened: open it again")
    audiences = {a.name: a for a in studio.catalog.audiences()}
    if name in audiences and name != opened_name:
        raise UserError(f"{name} is an existing audience: open it from the Audiences page to edit it, or pick "
                        "another name for this one")
    parent = studio.catalog.graph().models.get(arguments.get("parent"), {})
    pk = parent.get("primary_key")
    taken = {n: f for n, f in studio.catalog.taken(own=folder / f"{name}.sql").items() if n != opened_name}
    result = save_audience(studio.settings.where.project_dir, folder, name, arguments,
                           original=original if original is not None and original.path.parent.resolve() == folder
                           and name == opened_name else None,
                           overwrite=bool(body.get("overwrite")), description=body.get("description"),
                           primary_key=[pk] if isinstance(pk, str) else list(pk or []), taken=taken)
    yml_path, changed = result.yml_path, result.changed
    description = body.get("description")
    if opened_name == name and not result.created and isinstance(description, str):
        # an existing audience's description lives in its YAML entry, maybe in a file documenting several models:
        # only that entry's description is rewritten, and only when the builder changed it; one saved by the
        # builder and not built yet has its own <name>.yml beside it
        info = audiences.get(name)
        documented = info.yml_path if info is not None else folder / f"{name}.yml"
        unchanged = info is not None and description.strip() == info.description.strip()
        if documented is not None and documented.is_file() and not unchanged and \
                set_yaml_description(studio.settings.where.project_dir, documented, name, description.strip()):
            yml_path, changed = documented, True
    return {"sql": str(result.sql_path.relative_to(root)),
            "yml": str(yml_path.resolve().relative_to(root)) if yml_path else None,
            "changed": changed, "created": result.created, "digest": result.digest}


def _own_audience(studio: Studio, name: Any) -> AudienceInfo:
    info = studio.catalog.audience(check_name(name))
    if info.sql_path is None:
        raise NotEditable(f"{info.name} belongs to a package, not to this project")
    return info


def rename(studio: Studio, name: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Rename an audience of the project (files.rename_audience); the listings leave the old name out until the
    next build, and the old name is free at once (Catalog.taken). Returns the file's new path, relative, its YAML
    file and the digest of its text."""
    info = _own_audience(studio, name)
    assert info.sql_path is not None
    root = studio.settings.where.project_dir.resolve()
    new_name = check_name(body.get("new_name"))
    moved = rename_audience(root, info.sql_path, info.yml_path, info.name, new_name,
                            taken=studio.catalog.taken(own=info.sql_path.parent / f"{new_name}.sql"),
                            referred_by=studio.catalog.referrers(info.name))
    studio.catalog.forget(info.name, renamed=(new_name, moved.sql_path, moved.yml_path))
    return {"name": moved.sql_path.stem, "sql": str(moved.sql_path.relative_to(root)),
            "yml": str(moved.yml_path.resolve().relative_to(root)) if moved.yml_path else None,
            "digest": digest_of(moved.sql_path.read_text(encoding="utf-8"))}


def delete(studio: Studio, name: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Delete an audience of the project (files.delete_audience) once the request confirms it."""
    info = _own_audience(studio, name)
    assert info.sql_path is not None
    if body.get("confirm") is not True:
        raise UserError(f"{info.name}: deleting needs a confirmation; nothing deleted")
    root = studio.settings.where.project_dir.resolve()
    moved = delete_audience(root, info.sql_path, info.yml_path, info.name,
                            referred_by=studio.catalog.referrers(info.name))
    studio.catalog.forget(info.name)
    return {"deleted": str(moved.sql_path.relative_to(root)),
            "yml": str(moved.yml_path.resolve().relative_to(root)) if moved.yml_path else None,
            "yml_removed": moved.yml_removed}


def reparse(path: Any) -> Any:
    return parse_audience(path)


# -- syncs --------------------------------------------------------------------------------------------------------


def recent_runs(studio: Studio, limit: int = 50, sync: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    syncs, problem = studio.syncs()
    try:
        default = studio.queries.call("sync_default_state_schema")
        schemas = sorted({s.state_schema or default for s in syncs} or {default})
        runs: list[dict[str, Any]] = []
        for schema in schemas:
            result = studio.queries.call("sync_recent_runs", state_schema=schema, limit=limit)
            columns = [str(c).lower() for c in result["columns"]]  # Snowflake answers in upper case
            runs += [dict(zip(columns, [_plain(v) for v in row], strict=True)) for row in result["rows"]]
    except Exception as exc:
        return [], one_line(exc)
    if sync is not None:
        runs = [r for r in runs if r.get("sync_name") == sync]
    runs.sort(key=lambda r: str(r.get("started_at")), reverse=True)
    for r in runs:
        if r.get("error"):
            r["error"] = REDACT(r["error"])
    return runs[:limit], problem


def rejections(studio: Studio, sync: Any) -> list[list[Any]]:
    try:
        default = studio.queries.call("sync_default_state_schema")
        rows = studio.queries.call("sync_rejections", sync=sync.macro_args(sync.state_schema or default), limit=100)
    except Exception:  # no rejections table before the first run
        return []
    return [[REDACT(v) if isinstance(v, str) else v for v in r] for r in rows]


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat(sep=" ", timespec="seconds") if hasattr(v, "hour") else v.isoformat()
    try:
        return int(v) if int(v) == v else float(v)
    except (TypeError, ValueError):
        return str(v)


__all__ = ["builder", "save_audience"]
