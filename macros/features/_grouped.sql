{#- Grouped inputs: an input whose rows are another input's rows grouped per person and `group_by` columns, e.g.
    sessions from track events:

        'sessions': {'from': 'tracks', 'group_by': ['session_id'], 'timestamp': 'started_at',
                     'columns': {'started_at': 'min(timestamp)', 'ended_at': 'max(timestamp)'}}

    Entity vars then aggregate one row per session (`avg(date_diff(...))` over sessions). It is what an analyst
    writes by hand, a GROUP BY, where the same feature through input vars needs window passes over every event
    (`min(...) over (partition by main_id, session_id)` plus a `row_number()` to keep one row per session): on
    DuckDB the windows sort every row of the input, the GROUP BY hashes them. -#}

{#- The spec of grouped input `name` (its `from` is an input listed before it, in `specs`); the grouped columns'
    SQL is added to the source input's tokens, so the source carries the columns it reads. -#}
{% macro _grouped_input_spec(prefix, name, input, specs) %}
    {%- set at = prefix ~ ", input '" ~ name ~ "'" -%}
    {%- for key in ['relation', 'ids', 'normalize'] if key in input -%}
        {{ exceptions.raise_compiler_error(at ~ ": `" ~ key ~ "` does not apply to a grouped input (its rows are "
                                           ~ "the rows of its `from` input, grouped)") }}
    {%- endfor -%}
    {%- do dbt_studio._check_keys(at, input, ['from', 'group_by', 'columns', 'timestamp'], what='a grouped input') -%}
    {%- set source = input['from'] -%}
    {%- if source is not string or source not in specs -%}
        {{ exceptions.raise_compiler_error(at ~ ": `from` names unknown input '" ~ source ~ "' (a grouped input "
                                           ~ "reads an input listed before it: " ~ (specs.keys() | list | join(', ')
                                           or 'none') ~ ")") }}
    {%- endif -%}
    {%- set group_by = input.get('group_by') -%}
    {%- set group_by = [group_by] if group_by is string else group_by -%}
    {%- set plain = '^[A-Za-z_][A-Za-z0-9_]*$' -%}
    {%- set check = namespace(bad=group_by is none or group_by is mapping or group_by is not iterable
                                  or group_by | length == 0) -%}
    {%- for column in (group_by if not check.bad else []) if column is not string
                                                            or not modules.re.match(plain, column) -%}
        {%- set check.bad = true -%}
    {%- endfor -%}
    {%- if check.bad -%}
        {{ exceptions.raise_compiler_error(at ~ ": `group_by` must be a list of column names of input '" ~ source
                                           ~ "' (the rows are grouped per person and these)") }}
    {%- endif -%}
    {%- set keys = [] -%}
    {%- for column in group_by if column | lower != 'main_id' and column | lower not in keys | map('lower') | list -%}
        {%- do keys.append(column) -%}
    {%- endfor -%}
    {%- set columns = input.get('columns') -%}
    {%- if columns is not mapping or columns | length == 0 -%}
        {{ exceptions.raise_compiler_error(at ~ ": `columns` must be a mapping {name: aggregate SQL} "
                                           ~ "(e.g. {'started_at': 'min(timestamp)'})") }}
    {%- endif -%}
    {%- set out = [] -%}
    {%- for column, sql in columns.items() -%}
        {%- if column is not string or not modules.re.match(plain, column) -%}
            {{ exceptions.raise_compiler_error(at ~ ", column '" ~ column ~ "': a column name must be a plain name "
                                               ~ "(letters, digits, _)") }}
        {%- endif -%}
        {%- if column | lower == 'main_id' or column | lower in keys | map('lower') | list -%}
            {{ exceptions.raise_compiler_error(at ~ ", column '" ~ column ~ "': the name is taken by a grouping "
                                               ~ "column") }}
        {%- endif -%}
        {%- if sql is not string or not sql | trim -%}
            {{ exceptions.raise_compiler_error(at ~ ", column '" ~ column ~ "': the value must be an aggregate's SQL "
                                               ~ "(e.g. 'min(timestamp)')") }}
        {%- endif -%}
        {%- do out.append({'name': column, 'sql': sql | trim}) -%}
    {%- endfor -%}
    {%- set read = (keys + out | map(attribute='sql') | list) | join(' ') -%}
    {%- set names = dbt_studio._sql_identifiers(read) | map(attribute='name') | map('lower') | list -%}
    {%- do specs[source].tokens.extend(names) -%}
    {%- set ts = input.get('timestamp') -%}
    {%- set grouped_columns = keys + out | map(attribute='name') | list -%}
    {%- if ts is not none and (ts is not string or (modules.re.match(plain, ts)
                                                   and ts | lower not in grouped_columns | map('lower') | list)) -%}
        {%- set close = dbt_studio._closest(ts | string, grouped_columns) -%}
        {{ exceptions.raise_compiler_error(at ~ ": `timestamp` '" ~ ts ~ "' is not a column of the grouped rows ("
                                           ~ ("did you mean '" ~ close ~ "'?" if close else
                                              "columns: " ~ grouped_columns | join(', ')) ~ ")") }}
    {%- endif -%}
    {{ return({
        'name': name,
        'cte': dbt_studio._input_cte(name),
        'relation': none,
        'ids': [],
        'id_types': {},
        'timestamp': ts,
        'ts': ts,
        'grouped': {'source': source, 'rows': specs[source].cte ~ '__rows', 'group_by': keys, 'columns': out},
    }) }}
{% endmacro %}


{#- The rows of a grouped input: one per person and group, its columns aggregated from the source's rows (which
    are mapped to main_id and cut at as_of already); rows whose own timestamp is after as_of are left out too. -#}
{% macro _grouped_rows(input) %}
    {%- set g = input.grouped -%}
    {%- set sql -%}
select
    main_id,
    {%- for column in g.group_by %}
    {{ column }},
    {%- endfor %}
    {%- for column in g.columns %}
    {{ column.sql }} as {{ column.name }}{{ "," if not loop.last }}
    {%- endfor %}
from {{ g.rows }}
group by main_id{% for column in g.group_by %}, {{ column }}{% endfor %}
    {%- endset -%}
    {%- if not input.get('as_of_filter') -%}
        {{ return(sql) }}
    {%- endif -%}
    {%- set filtered -%}
select *
from (
{{ sql | indent(4, true) }}
) as grouped
where {{ input.as_of_filter }}
    {%- endset -%}
    {{ return(filtered) }}
{% endmacro %}
