/* dbt-studio audience builder: edits the audience's arguments (the same dict the .sql file holds) in place,
   asks /api/funnel after each change (debounced; the previous request is aborted, and the server cancels its
   query), and saves through /api/save. Plain DOM, no framework, no build step. */
(function () {
  'use strict';
  const root = document.getElementById('builder');
  const session = Math.random().toString(36).slice(2);
  let schema = null;
  let args = {parent: null};          // the audience call's arguments ({"$jinja": ...} for expressions)
  let conditions = [];                // top-level conditions (the funnel's steps)
  let wrapped = true;                 // the file wrote its where as {'and': [...]}
  let opened = null;                  // {name, digest, as_of} of the file the builder opened
  let timer = null, inflight = null, insightTimer = null;
  const valueCache = {};

  const OPS = ['=', '!=', '<>', '<', '<=', '>', '>=', 'in', 'not in', 'between', 'contains', 'starts with', 'ends with',
    'is null', 'is not null', 'within last days', 'more than days ago', 'before', 'after'];
  const CMP = ['=', '!=', '<', '<=', '>', '>='];
  const TIME_OPS = ['before', 'after', 'within last days', 'more than days ago'];
  const AGGS = ['count', 'sum', 'avg', 'min', 'max'];

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'on') { for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn); }
      else if (k === 'class') e.className = v;
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
    return e;
  }

  function select(options, value, onChange, attrs) {
    const s = el('select', attrs || {});
    for (const o of options) {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      const opt = el('option', {value: v}, label);
      if (v === value) opt.selected = true;
      s.append(opt);
    }
    if (value !== undefined && value !== null && !options.some(o => (Array.isArray(o) ? o[0] : o) === value)) {
      s.prepend(el('option', {value: value, selected: true}, value));
    }
    s.addEventListener('change', () => onChange(s.value));
    return s;
  }

  function model(name) { return schema.models[name] || {columns: [], relationships: [], merged: []}; }
  function columnNames(name) { return model(name).columns.map(c => c[0]); }
  function columnType(name, column) {
    const c = model(name).columns.find(c => c[0] === column);
    return c ? c[1] : '';
  }
  function isNumeric(type) { return /int|dec|num|float|double|real/i.test(type || ''); }
  function coerce(text, type) {
    if (text === '') return null;
    if (isNumeric(type) && /^-?\d+(\.\d+)?$/.test(text.trim())) return Number(text.trim());
    return text;
  }

  /* Related models of `name` for has / performed pickers: [{value, label, via}] */
  function related(name, events) {
    const out = [];
    for (const r of model(name).relationships) {
      const isEvent = model(r.to).type === 'event';
      if (events !== isEvent) continue;
      out.push({to: r.to, via: r.through, label: r.to + ' (' + r.cardinality + (r.through ? ' via ' + r.through : '') + ')'});
    }
    return out;
  }
  function targetOf(node) {
    const key = ['has', 'has not', 'performed', 'did not perform'].find(k => k in node);
    const t = node[key];
    return Array.isArray(t) ? t[t.length - 1] : t;
  }

  // -- editors -------------------------------------------------------------------------------------------------

  function changed(structural) {
    if (structural) render();
    schedule();
  }

  function valueEditor(node, scope) {
    const op = node.op || '=';
    const type = columnType(scope, node.column);
    const listId = 'values-' + scope + '-' + node.column;
    if (op === 'is null' || op === 'is not null') { delete node.value; return el('span'); }
    if (op === 'between') {
      const v = Array.isArray(node.value) ? node.value : [null, null];
      node.value = v;
      const a = el('input', {class: 'value', value: v[0] ?? '', list: listId, on: {input: e => { v[0] = coerce(e.target.value, type); changed(); }}});
      const b = el('input', {class: 'value', value: v[1] ?? '', list: listId, on: {input: e => { v[1] = coerce(e.target.value, type); changed(); }}});
      return el('span', {}, a, ' and ', b, datalist(listId, scope, node.column));
    }
    if (op === 'in' || op === 'not in') {
      const v = Array.isArray(node.value) ? node.value : [];
      node.value = v;
      const input = el('input', {class: 'value', value: v.join(', '), placeholder: 'a, b, c', list: listId,
        on: {input: e => {
          node.value = e.target.value.split(',').map(s => s.trim()).filter(s => s !== '').map(s => coerce(s, type));
          changed();
        }}});
      return el('span', {}, input, datalist(listId, scope, node.column));
    }
    if (op === 'within last days' || op === 'more than days ago') {
      return el('input', {class: 'value', type: 'number', min: 0, value: node.value ?? '',
        on: {input: e => { node.value = e.target.value === '' ? null : Number(e.target.value); changed(); }}});
    }
    if (Array.isArray(node.value)) node.value = node.value[0] ?? null;
    const input = el('input', {class: 'value', value: node.value ?? '', list: listId, autocomplete: 'off',
      on: {input: e => { node.value = coerce(e.target.value, type); changed(); }}});
    return el('span', {}, input, datalist(listId, scope, node.column));
  }

  function datalist(id, scope, column) {
    const list = el('datalist', {id: id});
    const key = scope + '.' + column;
    const fill = values => { list.innerHTML = ''; for (const v of values) list.append(el('option', {value: v.value}, v.value + ' (' + v.occurrences + ')')); };
    if (valueCache[key]) fill(valueCache[key]);
    else if (column) {
      fetch('/api/values?model=' + encodeURIComponent(scope) + '&column=' + encodeURIComponent(column), {credentials: 'same-origin'})
        .then(r => r.json()).then(d => {
          if (d.error) { document.getElementById('funnel-error').textContent = d.error; return; }  // asked again next time
          valueCache[key] = d.values || []; fill(valueCache[key]);
        });
    }
    return list;
  }

  function propertyEditor(node, scope) {
    const cols = columnNames(scope);
    if (!node.column) node.column = cols[0];
    return el('span', {class: 'property'},
      select(cols, node.column, v => { node.column = v; changed(true); }, {class: 'column'}),
      select(OPS, node.op || '=', v => { node.op = v; if (v === 'in' || v === 'not in' || v === 'between') node.value = []; else if (Array.isArray(node.value)) node.value = null; changed(true); }, {class: 'op'}),
      valueEditor(node, scope));
  }

  /* `numeric`: true, or a function of the operator (first / last: a number of days for the relative windows, a
     date or timestamp as text for before / after) */
  function cmpEditor(spec, ops, onChange, numeric) {
    const isNumber = op => typeof numeric === 'function' ? numeric(op) : !!numeric;
    const read = text => isNumber(spec.op || ops[0]) ? (text === '' ? null : Number(text)) : text;
    return el('span', {class: 'cmp'},
      select(ops, spec.op || ops[0], v => {
        spec.op = v;
        if (spec.value !== undefined && spec.value !== null) spec.value = read(String(spec.value));
        if (typeof spec.value === 'number' && isNaN(spec.value)) spec.value = null;
        onChange(true);
      }, {class: 'cmp-op'}),
      el('input', {class: 'cmp-value', value: spec.value ?? '', type: isNumber(spec.op || ops[0]) ? 'number' : 'text',
        on: {input: e => { spec.value = read(e.target.value); onChange(false); }}}));
  }

  function relatedEditor(node, scope, events) {
    const key = ['has', 'has not', 'performed', 'did not perform'].find(k => k in node);
    const options = related(scope, events);
    const current = targetOf(node);
    const target = select(options.map(o => [o.to, o.label]), current, v => {
      node[key] = v;
      const o = options.find(o => o.to === v);
      if (o && o.via) node.via = o.via; else delete node.via;
      delete node.where; changed(true);
    }, {class: 'target'});
    const parts = [target];
    const end = current;
    if (node.where) {
      parts.push(el('div', {class: 'where'}, el('span', {class: 'muted'}, 'where '),
        condEditor(node.where, end, () => { delete node.where; changed(true); }, w => { node.where = w; })));
    } else {
      parts.push(el('button', {class: 'small add-where', on: {click: () => { node.where = {column: columnNames(end)[0], op: '=', value: null}; changed(true); }}}, '+ where'));
    }
    if (key === 'has') {
      const having = node.having ? (Array.isArray(node.having) ? node.having : [node.having]) : [];
      having.forEach((h, i) => {
        parts.push(el('div', {class: 'having'}, 'having ',
          select(AGGS, h.agg || 'count', v => { h.agg = v; if (v === 'count') delete h.column; else h.column = h.column || columnNames(end)[0]; changed(true); }, {class: 'agg'}),
          (h.agg || 'count') === 'count' ? '' : select(columnNames(end), h.column, v => { h.column = v; changed(true); }, {class: 'agg-column'}),
          cmpEditor(h, CMP, s => changed(s), true),
          el('button', {class: 'small', on: {click: () => { having.splice(i, 1); node.having = having.length ? having : undefined; if (!having.length) delete node.having; changed(true); }}}, '✕')));
      });
      parts.push(el('button', {class: 'small add-having', on: {click: () => { having.push({agg: 'count', op: '>=', value: 1}); node.having = having; changed(true); }}}, '+ having'));
    }
    if (key === 'performed' || key === 'did not perform') {
      parts.push(el('label', {class: 'window'}, 'within last ',
        el('input', {class: 'within-days', type: 'number', min: 0, value: node.within_days ?? '',
          on: {input: e => { if (e.target.value === '') delete node.within_days; else node.within_days = Number(e.target.value); changed(); }}}), ' days'));
      parts.push(betweenEditor(node));
    }
    if (key === 'performed') {
      for (const k of ['times', 'first', 'last']) {
        if (node[k] !== undefined && node[k] !== null) {
          // `times: 3` is short for {op: '>=', value: 3}: shown as such, written back as a mapping only when edited
          const spec = typeof node[k] === 'object' ? node[k] : {op: '>=', value: node[k]};
          parts.push(el('div', {class: k}, k + ' ', cmpEditor(spec, k === 'times' ? CMP : TIME_OPS, s => { node[k] = spec; changed(s); }, k === 'times' || (op => op === 'within last days' || op === 'more than days ago')),
            el('button', {class: 'small', on: {click: () => { delete node[k]; changed(true); }}}, '✕')));
        } else {
          parts.push(el('button', {class: 'small add-' + k, on: {click: () => { node[k] = k === 'times' ? {op: '>=', value: 1} : {op: 'after', value: ''}; changed(true); }}}, '+ ' + k));
        }
      }
    }
    return el('span', {class: 'related'}, ...parts);
  }

  /* An event's window between two times ([start, end): start included, end not), beside or instead of
     `within last N days`. Values are written as typed (dates or timestamps as text). */
  function betweenEditor(node) {
    if (!Array.isArray(node.between)) {
      return el('button', {class: 'small add-between', on: {click: () => { node.between = ['', '']; changed(true); }}}, '+ between');
    }
    const v = node.between;
    const input = (i, cls) => el('input', {class: cls, value: v[i] ?? '', placeholder: 'YYYY-MM-DD', size: 19,
      on: {input: e => { v[i] = e.target.value; changed(); }}});
    return el('div', {class: 'between'}, 'between ', input(0, 'between-start'), ' and before ', input(1, 'between-end'),
      el('button', {class: 'small', on: {click: () => { delete node.between; changed(true); }}}, '✕'));
  }

  function membershipEditor(node, scope) {
    const key = 'in audience' in node ? 'in audience' : 'not in audience';
    const names = schema.audiences.filter(a => a.parent === scope && a.name !== (opened && opened.name)).map(a => a.name);
    if (!node[key] && names.length) node[key] = names[0];
    return select(names, node[key], v => { node[key] = v; changed(true); }, {class: 'audience'});
  }

  function kindOf(node) {
    for (const k of ['and', 'or', 'not', 'has', 'has not', 'performed', 'did not perform', 'in audience', 'not in audience']) {
      if (k in node) return k;
    }
    return 'column';
  }

  function fresh(kind, scope) {
    const rel = related(scope, false)[0], ev = related(scope, true)[0];
    const aud = schema.audiences.find(a => a.parent === scope);
    switch (kind) {
      case 'column': return {column: columnNames(scope)[0], op: '=', value: null};
      case 'has': case 'has not': return rel ? Object.assign({[kind]: rel.to}, rel.via ? {via: rel.via} : {}) : null;
      case 'performed': case 'did not perform': return ev ? Object.assign({[kind]: ev.to}, ev.via ? {via: ev.via} : {}) : null;
      case 'in audience': case 'not in audience': return aud ? {[kind]: aud.name} : null;
      case 'and': case 'or': return {[kind]: []};
      case 'not': return {not: {column: columnNames(scope)[0], op: '=', value: null}};
    }
    return null;
  }

  const ADD = [['column', '+ property'], ['has', '+ has'], ['has not', '+ has not'], ['performed', '+ performed'],
    ['did not perform', '+ did not perform'], ['in audience', '+ in audience'], ['not in audience', '+ not in audience'],
    ['or', '+ any of (or)'], ['and', '+ all of (and)'], ['not', '+ not']];

  function adders(list, scope) {
    return el('div', {class: 'adders'}, ADD.map(([kind, label]) => el('button', {class: 'small add', 'data-kind': kind,
      on: {click: () => { const n = fresh(kind, scope); if (n) { list.push(n); changed(true); } }}}, label)));
  }

  /* One condition; `remove` drops it, `replace(n)` puts n in its place. */
  function condEditor(node, scope, remove, replace) {
    const kind = kindOf(node);
    let body;
    if (kind === 'and' || kind === 'or') {
      const list = node[kind];
      body = el('div', {class: 'group group-' + kind},
        select([['and', 'all of'], ['or', 'any of']], kind, v => { const l = node[kind]; delete node[kind]; node[v] = l; changed(true); }, {class: 'group-kind'}),
        list.map((c, i) => condRow(c, scope, list, i)), adders(list, scope));
    } else if (kind === 'not') {
      body = el('div', {class: 'group group-not'}, el('span', {class: 'muted'}, 'not '),
        condEditor(node.not, scope, remove, n => { node.not = n; }));
    } else if (kind === 'column') body = propertyEditor(node, scope);
    else if (kind === 'in audience' || kind === 'not in audience') body = el('span', {}, el('span', {class: 'kind'}, kind + ' '), membershipEditor(node, scope));
    else body = el('span', {}, el('span', {class: 'kind'}, kind + ' '), relatedEditor(node, scope, kind === 'performed' || kind === 'did not perform'));
    return body;
  }

  function condRow(node, scope, list, i) {
    return el('div', {class: 'cond', 'data-index': i},
      el('span', {class: 'tools'},
        el('button', {class: 'small up', title: 'move up', on: {click: () => { if (i > 0) { [list[i - 1], list[i]] = [list[i], list[i - 1]]; changed(true); } }}}, '↑'),
        el('button', {class: 'small down', title: 'move down', on: {click: () => { if (i < list.length - 1) { [list[i + 1], list[i]] = [list[i], list[i + 1]]; changed(true); } }}}, '↓'),
        el('button', {class: 'small negate', title: 'negate', on: {click: () => { list[i] = 'not' in node && Object.keys(node).length === 1 ? node.not : {not: node}; changed(true); }}}, '¬'),
        el('button', {class: 'small group-it', title: 'put in a group', on: {click: () => { list[i] = {or: [node]}; changed(true); }}}, '( )'),
        el('button', {class: 'small remove', title: 'remove', on: {click: () => { list.splice(i, 1); changed(true); }}}, '✕')),
      condEditor(node, scope, () => { list.splice(i, 1); changed(true); }, n => { list[i] = n; }));
  }

  function splitsEditor() {
    const box = document.getElementById('splits');
    box.innerHTML = '';
    const s = args.splits;
    if (!s) {
      box.append(el('button', {class: 'small add-splits', on: {click: () => { args.splits = {groups: {treatment: 90, holdout: 10}, holdout: 'holdout', salt: args.parent || 'studio'}; changed(true); }}}, '+ splits'));
      return;
    }
    const groups = Object.entries(s.groups || {});
    groups.forEach(([g, pct], i) => {
      box.append(el('div', {class: 'split-row'},
        el('input', {class: 'split-name', value: g, on: {change: e => {
          // a group renamed onto another group's name would merge the two keys and drop one: refused here (and
          // by the server), the group keeps its name
          const wanted = e.target.value, note = e.target.parentNode.querySelector('.split-error');
          const refused = wanted === '' ? 'a group needs a name'
            : wanted !== g && Object.prototype.hasOwnProperty.call(s.groups, wanted)
              ? '"' + wanted + '" is already a group: pick another name' : '';
          if (refused) { note.textContent = refused + ' (the group is still "' + g + '")'; e.target.value = g; return; }
          note.textContent = '';
          const entries = Object.entries(s.groups); entries[i][0] = wanted; const old = g;
          s.groups = Object.fromEntries(entries); if (s.holdout === old) s.holdout = wanted; changed(true); }}}),
        el('input', {class: 'split-pct', type: 'number', min: 0, max: 100, value: pct, on: {input: e => { s.groups[g] = Number(e.target.value); changed(); }}}), '%',
        el('button', {class: 'small', on: {click: () => { delete s.groups[g]; if (s.holdout === g) delete s.holdout; changed(true); }}}, '✕'),
        el('span', {class: 'split-error error small'})));
    });
    box.append(el('div', {},
      el('button', {class: 'small add-group', on: {click: () => { s.groups['group_' + (groups.length + 1)] = 0; changed(true); }}}, '+ group'),
      ' holdout ', select([['', '(none)']].concat(groups.map(([g]) => [g, g])), s.holdout || '', v => { if (v) s.holdout = v; else delete s.holdout; changed(true); }, {class: 'holdout'}),
      ' salt ', el('input', {class: 'salt', value: s.salt || '', on: {input: e => { s.salt = e.target.value; changed(); }}}),
      ' ', el('button', {class: 'small', on: {click: () => { delete args.splits; changed(true); }}}, 'remove splits')));
  }

  function traitsEditor() {
    const box = document.getElementById('traits');
    box.innerHTML = '';
    const traits = args.traits || [];
    traits.forEach((t, i) => {
      const end = Array.isArray(t.related) ? t.related[t.related.length - 1] : t.related;
      box.append(el('div', {class: 'trait'},
        el('input', {class: 'trait-name', value: t.name || '', on: {input: e => { t.name = e.target.value; changed(); }}}), ' = ',
        select(['count', 'sum', 'avg', 'min', 'max', 'first', 'last', 'most_frequent'], t.agg || 'count', v => { t.agg = v; if (v !== 'count' && !t.column) t.column = columnNames(end)[0]; if (v !== 'first' && v !== 'last') delete t.order_by; changed(true); }),
        ' of ', select(model(args.parent).relationships.map(r => r.to), end, v => { t.related = v; delete t.where; delete t.order_by; const r = model(args.parent).relationships.find(r => r.to === v); if (r && r.through) t.via = r.through; else delete t.via; changed(true); }),
        (t.agg || 'count') === 'count' && !t.column ? '' : select(columnNames(end), t.column, v => { t.column = v; changed(true); }),
        t.agg === 'first' || t.agg === 'last' ? el('span', {class: 'trait-order'}, ' by ',
          select([['', '(its timestamp)']].concat(columnNames(end).map(c => [c, c])), t.order_by || '', v => { if (v) t.order_by = v; else delete t.order_by; changed(true); }, {class: 'trait-order-by'})) : '',
        el('button', {class: 'small', on: {click: () => { traits.splice(i, 1); if (!traits.length) delete args.traits; changed(true); }}}, '✕'),
        t.where ? el('div', {class: 'where trait-where'}, el('span', {class: 'muted'}, 'where '),
          condEditor(t.where, end, () => { delete t.where; changed(true); }, w => { t.where = w; }),
          el('button', {class: 'small', on: {click: () => { delete t.where; changed(true); }}}, '✕'))
          : el('button', {class: 'small add-trait-where', on: {click: () => { t.where = {column: columnNames(end)[0], op: '=', value: null}; changed(true); }}}, '+ where')));
    });
    const first = model(args.parent).relationships[0];
    box.append(el('button', {class: 'small add-trait', on: {click: () => {
      if (!first) return; args.traits = traits; traits.push({name: 'trait_' + (traits.length + 1), related: first.to, agg: 'count'}); changed(true); }}}, '+ trait'));
  }

  function render() {
    const box = document.getElementById('conditions');
    box.innerHTML = '';
    conditions.forEach((c, i) => box.append(condRow(c, args.parent, conditions, i)));
    const top = document.getElementById('top-adders');
    top.innerHTML = '';
    top.append(adders(conditions, args.parent));
    splitsEditor();
    traitsEditor();
    renderInsightChoices();
  }

  // -- the spec and the panels ---------------------------------------------------------------------------------

  function whereOf() {
    if (conditions.length === 0) return null;
    if (conditions.length === 1 && !wrapped) return conditions[0];
    return {and: conditions};
  }

  function argumentsOut() {
    const out = {};
    for (const [k, v] of Object.entries(args)) if (v !== undefined) out[k] = v;
    const where = whereOf();
    if (where === null) { if ('where' in out && out.where !== null) delete out.where; }
    else out.where = where;
    return out;
  }

  function spec() {
    const out = {};
    for (const [k, v] of Object.entries(argumentsOut())) {
      if (v && typeof v === 'object' && '$jinja' in v) continue;
      out[k] = v;
    }
    if (opened && args.as_of && typeof args.as_of === 'object') out.as_of = opened.as_of;
    delete out.name;
    return out;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }

  async function refresh() {
    if (!args.parent) return;
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    document.getElementById('busy').textContent = 'counting…';
    let data;
    try {
      data = await studioPost('/api/funnel', {spec: spec(), session: session}, controller.signal);
    } catch (e) {
      return;  // aborted by a newer change
    }
    if (controller !== inflight) return;
    inflight = null;
    document.getElementById('busy').textContent = '';
    const err = document.getElementById('funnel-error');
    if (data.error) { if (data._status !== 409) err.textContent = data.error; return; }
    err.textContent = '';
    showFunnel(data);
    clearTimeout(insightTimer);
    insightTimer = setTimeout(refreshInsights, 50);
  }

  function bar(label, n, total, cls) {
    const pct = total ? (100 * n / total) : 0;
    return el('div', {class: 'bar-row ' + (cls || '')},
      el('div', {class: 'bar-label'}, label),
      el('div', {class: 'bar'}, el('div', {class: 'bar-fill', style: 'width:' + pct.toFixed(1) + '%'})),
      el('div', {class: 'bar-num'}, n.toLocaleString('en-US'), el('span', {class: 'muted small'}, ' ' + pct.toFixed(1) + '%')));
  }

  function showFunnel(data) {
    document.getElementById('total').textContent = data.size.toLocaleString('en-US');
    document.getElementById('total').dataset.size = data.size;
    const f = document.getElementById('funnel');
    f.innerHTML = '';
    f.append(bar(args.parent + ' (all)', data.total, data.total, 'step-all'));
    data.steps.forEach((s, i) => f.append(bar((i + 1) + '. ' + s.condition, s.size, data.total, 'step')));
    const sp = document.getElementById('split-sizes');
    sp.innerHTML = '';
    for (const [g, n] of Object.entries(data.splits || {})) sp.append(bar('split ' + g, n, data.size, 'split-size'));
    const m = document.getElementById('members');
    m.innerHTML = '';
    const t = el('table', {class: 'members'}, el('thead', {}, el('tr', {}, data.members.columns.map(c => el('th', {}, c)))),
      el('tbody', {}, data.members.rows.map(r => el('tr', {}, r.map(v => el('td', {}, v === null ? '∅' : v))))));
    m.append(t);
  }

  function renderInsightChoices() {
    const box = document.getElementById('overlap-choices');
    const chosen = new Set([...box.querySelectorAll('input:checked')].map(i => i.value));
    box.innerHTML = '';
    for (const a of schema.audiences.filter(a => a.parent === args.parent && a.name !== (opened && opened.name))) {
      box.append(el('label', {class: 'choice'}, el('input', {type: 'checkbox', value: a.name, checked: chosen.has(a.name),
        on: {change: refreshInsights}}), ' ' + a.name));
    }
    const col = document.getElementById('breakdown-column');
    const current = col.value;
    col.innerHTML = '';
    col.append(el('option', {value: ''}, '(pick a column)'));
    for (const c of columnNames(args.parent).concat(model(args.parent).merged || [])) {
      col.append(el('option', {value: c, selected: c === current}, c));
    }
  }

  async function refreshInsights() {
    const others = [...document.querySelectorAll('#overlap-choices input:checked')].map(i => i.value);
    const o = document.getElementById('overlap');
    if (others.length) {
      const data = await studioPost('/api/overlap', {spec: spec(), others: others, session: session});
      o.innerHTML = '';
      if (data.error) o.append(el('p', {class: 'error'}, data.error));
      else {
        o.append(el('table', {class: 'overlap'},
          el('thead', {}, el('tr', {}, el('th', {}, ''), data.labels.map(l => el('th', {}, l)))),
          el('tbody', {}, data.labels.map((l, i) => el('tr', {}, el('th', {}, l),
            data.matrix[i].map((n, j) => el('td', {class: 'num' + (i === j ? ' diag' : ''), title: (100 * n / (data.matrix[i][i] || 1)).toFixed(1) + '% of ' + l}, n.toLocaleString('en-US'))))))));
        o.append(el('p', {class: 'muted small'}, 'of ' + data.total.toLocaleString('en-US') + ' ' + args.parent + ' rows'));
      }
    } else o.innerHTML = '';
    const column = document.getElementById('breakdown-column').value;
    const b = document.getElementById('breakdown');
    if (column) {
      const data = await studioPost('/api/breakdown', {spec: spec(), column: column, session: session});
      b.innerHTML = '';
      if (data.error) b.append(el('p', {class: 'error'}, data.error));
      else {
        const max = Math.max(1, ...data.rows.map(r => r.parent_rows));
        for (const r of data.rows) {
          b.append(el('div', {class: 'bar-row breakdown-row'}, el('div', {class: 'bar-label'}, r.value === null ? '∅' : r.value),
            el('div', {class: 'bar'}, el('div', {class: 'bar-parent', style: 'width:' + (100 * r.parent_rows / max).toFixed(1) + '%'}),
              el('div', {class: 'bar-fill', style: 'width:' + (100 * r.members / max).toFixed(1) + '%'})),
            el('div', {class: 'bar-num'}, r.members.toLocaleString('en-US') + ' / ' + r.parent_rows.toLocaleString('en-US'))));
        }
      }
    } else b.innerHTML = '';
  }

  // -- save and build ------------------------------------------------------------------------------------------

  async function save(overwrite) {
    const status = document.getElementById('save-status');
    const body = {name: document.getElementById('name').value.trim(), folder: document.getElementById('folder').value,
      description: document.getElementById('description').value, arguments: argumentsOut(), overwrite: !!overwrite,
      opened: opened && opened.name, digest: opened && opened.digest, as_of: opened && opened.as_of};
    const data = await studioPost('/api/save', body);
    if (data._status === 409 && /confirm/.test(data.error || '') && !overwrite) {
      if (window.confirm(data.error + '?')) return save(true);
      status.textContent = 'not saved';
      return;
    }
    if (data.error) { status.textContent = data.error; status.className = 'error'; return; }
    status.className = 'hint saved';
    status.textContent = data.changed ? ('saved ' + data.sql + (data.yml ? ' and ' + data.yml : '')) : 'no change: ' + data.sql + ' left as it was';
    // the file is now this page's: the next save is checked against what this one wrote, not what was opened
    opened = {name: body.name, digest: data.digest, as_of: opened ? opened.as_of : null};
    document.getElementById('build').disabled = false;
    document.getElementById('build').dataset.name = body.name;
  }

  async function build() {
    const name = document.getElementById('build').dataset.name || document.getElementById('name').value.trim();
    const data = await studioPost('/api/build', {name: name, new: true});
    const box = document.getElementById('job');
    if (data.error) { box.textContent = data.error; return; }
    box.innerHTML = '';
    const log = el('div', {'hx-get': '/jobs/' + data.job + '/log', 'hx-trigger': 'load', 'hx-swap': 'outerHTML'});
    box.append(log);
    htmx.process(box);
  }

  /* Rename or delete the opened audience (its file, and its YAML entry). The listings leave the old name out at
     once; the new name is listed after its next build. */
  async function renameAudience() {
    const status = document.getElementById('manage-status');
    const wanted = document.getElementById('new-name').value.trim();
    const data = await studioPost('/api/audience/' + encodeURIComponent(opened.name) + '/rename', {new_name: wanted});
    if (data.error) { status.textContent = data.error; status.className = 'error'; return; }
    status.className = 'hint saved';
    status.textContent = 'renamed to ' + data.sql + (data.yml ? ' (' + data.yml + ')' : '') + ': build it to list it under its new name';
    opened = {name: data.name, digest: data.digest, as_of: opened.as_of};
    root.dataset.audience = data.name;
    document.getElementById('builder-title').textContent = data.name;
    document.getElementById('name').value = data.name;
    document.getElementById('build').dataset.name = data.name;
    document.getElementById('new-name').value = '';
    history.replaceState(null, '', '/builder?audience=' + encodeURIComponent(data.name));
  }

  async function deleteAudience() {
    const status = document.getElementById('manage-status');
    if (!window.confirm('Delete ' + opened.name + '? Its file is removed (its table stays in the warehouse).')) {
      status.textContent = 'not deleted'; status.className = 'hint'; return;
    }
    const data = await studioPost('/api/audience/' + encodeURIComponent(opened.name) + '/delete', {confirm: true});
    if (data.error) { status.textContent = data.error; status.className = 'error'; return; }
    window.location = '/audiences';
  }

  // -- start ---------------------------------------------------------------------------------------------------

  function setParent(p) {
    args.parent = p;
    conditions.length = 0;
    delete args.traits;
    render();
    schedule();
  }

  async function start() {
    schema = await (await fetch('/api/schema', {credentials: 'same-origin'})).json();
    const folder = document.getElementById('folder');
    for (const f of schema.folders) folder.append(el('option', {value: f}, f));
    const name = root.dataset.audience;
    if (name) {
      const data = await (await fetch('/api/audience/' + encodeURIComponent(name), {credentials: 'same-origin'})).json();
      if (data.error) document.getElementById('builder-note').textContent = data.error;
      if (data.arguments) {
        args = data.arguments;
        opened = {name: data.name, digest: data.digest, as_of: data.as_of};
        const w = args.where;
        wrapped = !!(w && typeof w === 'object' && Object.keys(w).length === 1 && 'and' in w);
        conditions = w === undefined || w === null ? [] : (wrapped ? w.and : [w]);
        folder.value = data.folder;
        document.getElementById('description').value = data.description || '';
        document.getElementById('build').disabled = false;
        document.getElementById('build').dataset.name = data.name;
      }
      if (data.editable === false) document.getElementById('save').disabled = true;
      if (data.name && data.file) document.getElementById('manage').hidden = false;
    }
    const parent = document.getElementById('parent');
    const sel = select(schema.parents, args.parent || schema.parents[0], setParent, {id: 'parent'});
    parent.replaceWith(sel);
    if (!args.parent) args.parent = schema.parents[0];
    document.getElementById('save').addEventListener('click', () => save(false));
    document.getElementById('build').addEventListener('click', build);
    document.getElementById('rename').addEventListener('click', renameAudience);
    document.getElementById('delete').addEventListener('click', deleteAudience);
    document.getElementById('breakdown-column').addEventListener('change', refreshInsights);
    render();
    schedule();
  }
  start();
})();
