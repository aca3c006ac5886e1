{#- Unknown keys of a configuration dict: an error naming the key, with a did-you-mean. -#}

{#- Fail with `at ~ ": unknown key ..."` for the first key of `config` not in `allowed`. `elsewhere` maps keys that
    belong to other kinds of the same thing to what they apply to (e.g. {'partition_by': 'input vars'}), so a key
    in the wrong place says where it belongs; `what` names the thing in the list of known keys. With `key_path`
    the key ends the path (`where.within_day: unknown key 'within_day'`), as `dbt-studio validate` writes it. -#}
{% macro _check_keys(at, config, allowed, elsewhere={}, what='it', key_path=false) %}
    {%- for key in config if key not in allowed -%}
        {%- set here = at ~ ('.' ~ key if key_path else '') -%}
        {%- if key in elsewhere -%}
            {{ exceptions.raise_compiler_error(here ~ ": `" ~ key ~ "` only applies to " ~ elsewhere[key]) }}
        {%- endif -%}
        {%- set close = dbt_studio._closest(key | string, allowed | list + elsewhere.keys() | list) -%}
        {%- set hint = "did you mean '" ~ close ~ "'?" if close else "keys of " ~ what ~ ": " ~ allowed | join(', ') -%}
        {{ exceptions.raise_compiler_error(here ~ ": unknown key '" ~ key ~ "' (" ~ hint ~ ")") }}
    {%- endfor -%}
{% endmacro %}

{#- Fail with `at.key: must be one of ..., not 'x'` for the first key of `config` whose value is not one of its
    `choices` ({key: [values]}), in the words of `dbt-studio validate` (sync_runner/core/fields.py, Choice). -#}
{% macro _check_choices(at, config, choices) %}
    {%- for key, values in (choices or {}).items() if key in config and config[key] not in values -%}
        {%- set value = config[key] -%}
        {%- if value is string -%}
            {%- set shown = "'" ~ value ~ "'" -%}
        {%- elif value is none or value is sameas true or value is sameas false -%}
            {%- set shown = {none: 'None', true: 'True', false: 'False'}[value] -%}
        {%- else -%}
            {%- set shown = value | string -%}
        {%- endif -%}
        {%- set shown = shown if shown | length <= 60 else shown[:57] ~ '...' -%}
        {{ exceptions.raise_compiler_error(at ~ '.' ~ key ~ ": must be one of " ~ values | join(', ') ~ ", not "
                                           ~ shown) }}
    {%- endfor -%}
{% endmacro %}

{#- Fail with `at.key: must be a number > 0` (validate's words, generated with the spec) for the first key of
    `config` whose value is not a number within its spec ({key: [integer, minimum, above, maximum, message]}). -#}
{% macro _check_numbers(at, config, numbers) %}
    {%- for key, spec in (numbers or {}).items() if key in config -%}
        {%- set value = config[key] -%}
        {%- set low, high = spec[1], spec[3] -%}
        {%- set bad = value is not number or value is sameas true or value is sameas false
                      or (spec[0] and value is not integer)
                      or (low is not none and (value <= low if spec[2] else value < low))
                      or (high is not none and value > high) -%}
        {%- if bad -%}
            {{ exceptions.raise_compiler_error(at ~ '.' ~ key ~ ': ' ~ spec[4]) }}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{#- The choice nearest to `word` (case-insensitive edit distance at most 2, or a third of the word), else none. -#}
{% macro _closest(word, choices) %}
    {%- set best = namespace(choice=none, distance=999) -%}
    {%- for choice in choices -%}
        {%- set distance = dbt_studio._edit_distance(word | lower, choice | lower) -%}
        {%- if distance < best.distance -%}
            {%- set best.choice = choice -%}
            {%- set best.distance = distance -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(best.choice if best.distance <= [2, (word | length) // 3] | max else none) }}
{% endmacro %}

{#- Levenshtein distance (insertions, deletions and substitutions of one character). -#}
{% macro _edit_distance(a, b) %}
    {%- set row = namespace(previous=range(b | length + 1) | list) -%}
    {%- for i in range(1, a | length + 1) -%}
        {%- set current = [i] -%}
        {%- for j in range(1, b | length + 1) -%}
            {%- set substitution = row.previous[j - 1] + (0 if a[i - 1] == b[j - 1] else 1) -%}
            {%- do current.append([row.previous[j] + 1, current[j - 1] + 1, substitution] | min) -%}
        {%- endfor -%}
        {%- set row.previous = current -%}
    {%- endfor -%}
    {{ return(row.previous[b | length]) }}
{% endmacro %}
