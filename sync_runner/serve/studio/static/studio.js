/* dbt-studio: small helpers shared by the pages (charts with uPlot, the CSRF header, jobs). No build step. */
function studioCsrf() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

async function studioPost(url, body, signal) {
  const response = await fetch(url, {
    method: 'POST', signal: signal, credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': studioCsrf()},
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {error: response.statusText}; }
  data._status = response.status;
  return data;
}

function studioTime(text) {
  const t = Date.parse(String(text).replace(' ', 'T'));
  return isNaN(t) ? null : t / 1000;
}

function studioLine(el, xs, ys, label, width, height) {
  if (!window.uPlot || xs.length === 0) return;
  const opts = {
    width: width, height: height, legend: {show: false}, cursor: {show: width > 200},
    scales: {x: {time: true, range: (u, min, max) => (min === max ? [min - 3600, max + 3600] : [min, max])}},
    axes: width > 200 ? [{}, {size: 60}] : [{show: false}, {show: false}],
    series: [{}, {label: label, stroke: '#2f6fdf', width: 2, fill: 'rgba(47,111,223,0.12)',
                  points: {show: xs.length < 40}}],
  };
  el.innerHTML = '';
  new uPlot(opts, [xs, ys], el);
}

/* A sparkline of [[built_at, members], ...]. */
function studioSpark(el) {
  const series = JSON.parse(el.dataset.series || '[]');
  const xs = series.map(p => studioTime(p[0]));
  studioLine(el, xs, series.map(p => p[1]), 'members', 160, 40);
  el.title = series.map(p => p[0].slice(0, 19) + ': ' + p[1]).join('\n');
}

/* Rows acknowledged per run. */
function studioRunsChart(el) {
  const xs = JSON.parse(el.dataset.series || '[]').map(studioTime);
  const ys = JSON.parse(el.dataset.values || '[]').map(v => v || 0);
  if (xs.length === 0) { el.innerHTML = '<p class="muted">No runs yet.</p>'; return; }
  studioLine(el, xs, ys, 'rows sent', Math.min(900, el.clientWidth || 700), 180);
}

async function studioBuild(name) {
  const data = await studioPost('/api/build', {name: name});
  if (data.error) { alert(data.error); return; }
  window.location = data.url;
}

/* Charts in swapped partials are drawn once they settle. */
function studioCharts() {
  document.querySelectorAll('.spark:not([data-drawn])').forEach(el => { el.dataset.drawn = '1'; studioSpark(el); });
  document.querySelectorAll('#rows-chart:not([data-drawn])').forEach(el => { el.dataset.drawn = '1'; studioRunsChart(el); });
}
htmx.onLoad(function () { setTimeout(studioCharts, 0); });
