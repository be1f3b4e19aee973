// The ward dashboard. It calls the node's API as JSON (/api/v1/) with the
// user's own token, so the node applies the same roles and tenant scoping
// as to any other client; the token stays in this tab (sessionStorage)
// and is sent only in the Authorization header. All text from the API is
// put on the page as text, never as markup.
'use strict';

const METRICS = {
  METRIC_HEART_RATE: ['HR', '/min'],
  METRIC_SPO2: ['SpO\u2082', '%'],
  METRIC_RESPIRATION_RATE: ['RR', '/min'],
  METRIC_TEMPERATURE: ['Temp', '\u00B0C'],
  METRIC_SYSTOLIC_BP: ['SBP', 'mmHg'],
  METRIC_DIASTOLIC_BP: ['DBP', 'mmHg'],
  METRIC_MEAN_ARTERIAL_PRESSURE: ['MAP', 'mmHg'],
  METRIC_GLUCOSE: ['Glucose', 'mg/dL'],
  METRIC_OXYGEN_FLOW: ['O\u2082', 'L/min'],
  METRIC_CONSCIOUSNESS: ['ACVPU', ''],
  METRIC_INFUSION_RATE: ['Infusion', 'mL/h'],
  METRIC_INHALER_ACTUATION: ['Inhaler', 'puffs'],
};
const ACVPU = ['A', 'C', 'V', 'P', 'U'];
const PRIORITY_RANK = { PRIORITY_HIGH: 3, PRIORITY_MEDIUM: 2, PRIORITY_LOW: 1 };
const WARD_REFRESH_MS = 5000;
const HISTORY_REFRESH_MS = 60000;
const DEVICE_REFRESH_MS = 30000;
const BURDEN_REFRESH_MS = 60000;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const short = (name) => (name || '').split('/').pop();
const priorityWord = (p) => (p || '').replace('PRIORITY_', '');

const state = {
  token: null, tenant: null, subject: null, ward: null,
  twins: new Map(),      // patient name -> PatientTwin
  alerts: new Map(),     // alert name -> Alert (open ones)
  history: new Map(),    // patient|metric -> {at, points}
  devices: new Map(),    // device name -> {at, twin}
  resumeAfter: null,     // the alert stream's resume token
  feed: null,            // AbortController of the alert stream
  generation: 0,         // bumps at sign-out: loops of an old session stop
  audio: null,
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---- the API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function call(method, body, options) {
  const r = await fetch('/api/v1/' + method, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + state.token },
    body: JSON.stringify(body || {}),
    cache: 'no-store',
    ...(options || {}),
  });
  if (options && options.stream) return r;
  const text = await r.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch (e) { json = { message: text.slice(0, 200) }; }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

function tokenClaims(token) {
  const part = token.split('.')[1];
  if (!part) throw new Error('this is not a signed token (header.payload.signature)');
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(json);
}

// ---- sign-in ---------------------------------------------------------------

async function signIn(token, ward) {
  const claims = tokenClaims(token);
  if (!claims.tenant) throw new Error('the token names no tenant');
  state.token = token;
  state.tenant = claims.tenant;
  state.subject = claims.sub || '';
  state.ward = ward;
  // One call proves the token before the page changes.
  await call('TwinService/ListPatientTwins', { parent: parent(), filter: wardFilter(), pageSize: 1 });
  sessionStorage.setItem('healthtwin.token', token);
  sessionStorage.setItem('healthtwin.ward', ward);
  $('sign-in').hidden = true;
  $('ward-view').hidden = false;
  $('sign-out').hidden = false;
  $('sound').hidden = false;
  $('who').textContent = `${state.subject} \u00B7 ${state.tenant}`;
  $('ward-title').textContent = `Ward ${ward}`;
  const generation = ++state.generation;
  followAlerts(generation);
  refreshWardLoop(generation);
  refreshBurdenLoop(generation);
}

function signOut() {
  state.generation++;
  if (state.feed) state.feed.abort();
  sessionStorage.removeItem('healthtwin.token');
  state.token = null;
  state.twins.clear(); state.alerts.clear(); state.history.clear(); state.devices.clear();
  state.resumeAfter = null;
  $('beds').replaceChildren();
  $('alerts').replaceChildren();
  $('burden').replaceChildren();
  $('burden-noisy').replaceChildren();
  renderedAlerts = '';
  $('ward-view').hidden = true;
  $('sign-out').hidden = true;
  $('sound').hidden = true;
  $('sign-in').hidden = false;
  $('who').textContent = '';
  setFeedState('', '');
}

const parent = () => `tenants/${state.tenant}`;
const wardFilter = () => `ward = "${state.ward.replace(/["\\]/g, '\\$&')}"`;

// ---- the ward: one tile per bed ---------------------------------------------

async function refreshWard() {
  const twins = [];
  let pageToken = '';
  do {
    const page = await call('TwinService/ListPatientTwins', {
      parent: parent(), filter: wardFilter(), orderBy: 'bed', pageSize: 500, pageToken,
    });
    twins.push(...(page.patientTwins || []));
    pageToken = page.nextPageToken || '';
  } while (pageToken);
  state.twins = new Map(twins.map((t) => [t.name, t]));
  $('ward-error').textContent = twins.length ? '' : 'No patients in this ward.';
  renderBeds();
  renderAlerts();  // the feed names beds, known now
  loadDetails(twins);
}

async function refreshWardLoop(generation) {
  while (generation === state.generation) {
    try {
      await refreshWard();
    } catch (e) {
      if (generation !== state.generation) return;
      $('ward-error').textContent = `Ward not updated: ${e.message}`;
      if (e.status === 401) return signOut();
    }
    await sleep(WARD_REFRESH_MS);
  }
}

async function refreshPatient(name) {
  try {
    const twin = await call('TwinService/GetPatientTwin', { name });
    if (twin.ward === state.ward) state.twins.set(name, twin);
    else state.twins.delete(name);
    renderBeds();
  } catch (e) { /* the next ward refresh shows it */ }
}

// Trend lines and device status, fetched in the background and cached.
async function loadDetails(twins) {
  const now = Date.now();
  for (const twin of twins) {
    for (const v of twin.vitals || []) {
      const key = `${twin.name}|${v.metric}`;
      const had = state.history.get(key);
      if (had && now - had.at < HISTORY_REFRESH_MS) continue;
      state.history.set(key, { at: now, points: had ? had.points : [] });
      const end = Number(v.timeMs) + 1;
      call('TwinService/GetVitalsHistory', {
        patient: twin.name, metric: v.metric, startTimeMs: end - 3600000, endTimeMs: end, step: '60s',
      }).then((h) => {
        state.history.set(key, { at: now, points: (h.buckets || []).map((b) => b.mean) });
        renderBeds();
      }).catch(() => {});
    }
    for (const d of twin.devices || []) {
      const had = state.devices.get(d);
      if (had && now - had.at < DEVICE_REFRESH_MS) continue;
      state.devices.set(d, { at: now, twin: had ? had.twin : null });
      call('TwinService/GetDeviceTwin', { name: d }).then((t) => {
        state.devices.set(d, { at: now, twin: t });
        renderBeds();
      }).catch(() => {});
    }
  }
}

function sparkline(points, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 100 20');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  if (points.length > 1) {
    const lo = Math.min(...points), hi = Math.max(...points), span = hi - lo || 1;
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', points.map((p, i) =>
      `${(i * 100 / (points.length - 1)).toFixed(1)},${(18 - (p - lo) * 16 / span).toFixed(1)}`).join(' '));
    svg.append(line);
  }
  return svg;
}

function formatValue(metric, value) {
  if (metric === 'METRIC_CONSCIOUSNESS') return ACVPU[Math.round(value)] || String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function highestPriority(alerts) {
  let best = null;
  for (const a of alerts) if (!best || PRIORITY_RANK[a.priority] > PRIORITY_RANK[best]) best = a.priority;
  return best;
}

function bedTile(twin) {
  const alerts = [...state.alerts.values()].filter((a) => a.patient === twin.name);
  const open = alerts.length ? alerts : (twin.activeAlerts || []);
  const top = highestPriority(open);
  const n = twin.news2 || {};
  const band = (n.band || '').replace('NEWS2_BAND_', '');
  const change = twin.news2Change1h;
  const trendText = change === undefined || change === null ? '' :
    change > 0 ? `\u2191 ${change} in 1 h` : change < 0 ? `\u2193 ${-change} in 1 h` : '\u2192 steady';
  const news2 = el('div', { class: 'news2' },
    el('span', {
      class: `score band-${band || 'NONE'}`,
      title: n.complete ? 'NEWS2' : 'NEWS2 (* incomplete: not every parameter measured)',
      'aria-label': `NEWS2 ${n.total ?? 'not scored'}${n.complete ? '' : ', incomplete'}`,
    },
      n.band && n.band !== 'NEWS2_BAND_UNSPECIFIED' ? `${n.total}${n.complete ? '' : '*'}` : '\u2013'),
    el('span', { class: 'trend' }, `NEWS2 ${band.replace('_', '-')} ${trendText}`),
    sparkline((twin.news2History || []).map((p) => p.total), 'NEWS2 over the last hours'));
  const vitals = el('div', { class: 'vitals' });
  for (const v of twin.vitals || []) {
    const [label, unit] = METRICS[v.metric] || [null, null];
    if (!label) continue;
    const points = (state.history.get(`${twin.name}|${v.metric}`) || { points: [] }).points;
    vitals.append(el('span', { class: 'label' }, label),
      el('span', { class: 'value' }, `${formatValue(v.metric, v.value)} ${unit}`),
      sparkline(points, `${label} over the last hour`));
  }
  const devices = el('ul', { class: 'devices' });
  for (const d of twin.devices || []) {
    const t = (state.devices.get(d) || {}).twin;
    const status = !t ? '' : t.online ? 'online' : 'OFFLINE';
    const battery = t && t.hasBattery ? ` \u00B7 battery ${Math.round(t.batteryPercent)}%` : '';
    devices.append(el('li', { class: t && !t.online ? 'offline' : '' }, `${short(d)} ${status}${battery}`));
  }
  const bedAlerts = el('ul', { class: 'bed-alerts' });
  for (const a of [...open].sort((x, y) => PRIORITY_RANK[y.priority] - PRIORITY_RANK[x.priority]).slice(0, 3))
    bedAlerts.append(el('li', {}, el('span', { class: `badge p-${priorityWord(a.priority)}` }, priorityWord(a.priority)),
      ' ', a.message));
  return el('li', { class: `bed ${top ? 'p-' + priorityWord(top) : ''}`, 'data-patient': twin.name },
    el('div', { class: 'bed-head' },
      el('span', { class: 'bed-label' }, twin.bed ? `Bed ${twin.bed}` : 'No bed'),
      el('span', { class: 'patient' }, short(twin.name))),
    news2, vitals, devices, bedAlerts);
}

function renderBeds() {
  const twins = [...state.twins.values()].sort((a, b) =>
    (a.bed || '').localeCompare(b.bed || '', undefined, { numeric: true }) || a.name.localeCompare(b.name));
  $('beds').replaceChildren(...twins.map(bedTile));
}

// ---- alerts: the live feed ----------------------------------------------------

function setFeedState(text, cls) {
  const s = $('feed-state');
  s.textContent = text;
  s.className = `feed-state ${cls}`;
}

async function loadOpenAlerts() {
  const open = new Map();
  let pageToken = '';
  do {
    const page = await call('AlertService/ListAlerts', {
      parent: parent(), ward: state.ward, pageSize: 1000, pageToken,
      states: ['ALERT_STATE_ACTIVE', 'ALERT_STATE_ACKNOWLEDGED'],
    });
    for (const a of page.alerts || []) open.set(a.name, a);
    pageToken = page.nextPageToken || '';
  } while (pageToken);
  state.alerts = open;
  renderAlerts();
  renderBeds();
}

// The stream, resumed with the last token after a break; where the node
// cannot resume (a cluster's tenant-wide stream), it reconnects live and
// reloads the open alerts instead.
async function followAlerts(generation) {
  let delay = 500;
  while (generation === state.generation) {
    const ctl = new AbortController();
    state.feed = ctl;
    try {
      const body = { parent: parent(), ward: state.ward };
      if (state.resumeAfter) body.resumeAfter = state.resumeAfter;
      const r = await call('AlertService/StreamAlerts', body, { stream: true, signal: ctl.signal });
      if (!r.ok) {
        const e = new ApiError(r.status, await r.json().catch(() => ({})));
        if (r.status === 400 && body.resumeAfter) { state.resumeAfter = null; continue; }
        throw e;
      }
      setFeedState('Live', 'live');
      if (!body.resumeAfter) await loadOpenAlerts();
      delay = 500;
      await readEvents(r.body, generation);
      if (generation !== state.generation) return;
      setFeedState('Reconnecting\u2026', 'down');
    } catch (e) {
      if (generation !== state.generation) return;
      setFeedState(`Alerts not live: ${e.message}`, 'down');
      if (e.status === 401) return signOut();
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 10000);
  }
}

async function readEvents(stream, generation) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done || generation !== state.generation) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) kind = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (!data) continue;  // a keep-alive
      const json = JSON.parse(data);
      if (kind === 'error') {
        $('alert-error').textContent = `Alert stream ended: ${json.message}`;
        return;
      }
      onAlertEvent(json);
    }
  }
}

function onAlertEvent(event) {
  const a = event.alert;
  state.resumeAfter = event.resumeToken;
  if (!a || !a.name) return;
  const isNew = !state.alerts.has(a.name);
  if (a.state === 'ALERT_STATE_RESOLVED') state.alerts.delete(a.name);
  else state.alerts.set(a.name, a);
  $('alert-error').textContent = '';
  renderAlerts();
  if (event.type === 'ALERT_EVENT_TYPE_RAISED' || event.type === 'ALERT_EVENT_TYPE_ESCALATED' ||
      (isNew && a.state === 'ALERT_STATE_ACTIVE'))
    cue(a.priority);
  if (a.patient) refreshPatient(a.patient);
  refreshBurdenSoon();
}

function bedOf(patient) {
  const t = state.twins.get(patient);
  return t && t.bed ? `Bed ${t.bed}` : short(patient);
}

function alertItem(a) {
  const p = priorityWord(a.priority);
  const acked = a.state === 'ALERT_STATE_ACKNOWLEDGED';
  const when = a.raiseTimeMs ? new Date(Number(a.raiseTimeMs)).toLocaleTimeString() : '';
  const run = async (alert, fn) => {
    try {
      $('alert-error').textContent = '';
      const updated = await fn(alert);
      if (updated && updated.name) {
        if (updated.state === 'ALERT_STATE_RESOLVED') state.alerts.delete(updated.name);
        else state.alerts.set(updated.name, updated);
        renderAlerts();
        refreshPatient(alert.patient);
      }
    } catch (e) {
      $('alert-error').textContent = `Not done: ${e.message}`;
    }
  };
  const act = (label, fn) => el('button', { type: 'button', onclick: () => run(a, fn) }, label);
  const label = `${p} alert, ${bedOf(a.patient)}: ${a.message}`;
  return el('li', { class: `alert p-${p} ${acked ? 'acknowledged' : ''}`, 'data-alert': a.name, 'aria-label': label },
    el('div', {}, el('span', { class: `badge p-${p}` }, p), ' ',
      el('strong', {}, bedOf(a.patient)), ' ', a.message),
    el('div', { class: 'meta' }, `${short(a.patient)} \u00B7 raised ${when}`,
      a.escalationLevel ? ` \u00B7 escalated \u00D7${a.escalationLevel}` : '',
      a.silencedUntil ? ` \u00B7 silenced until ${new Date(a.silencedUntil).toLocaleTimeString()}` : ''),
    el('div', { class: 'state' }, acked ? `Acknowledged by ${a.acknowledgedBy}` : 'Not acknowledged'),
    el('div', { class: 'actions' },
      acked ? null : act('Acknowledge', (x) => call('AlertService/AcknowledgeAlert', { name: x.name })),
      act('Silence 15 min', async (x) => {
        await call('AlertService/SilenceAlerts', {
          patient: x.patient, metric: x.metric || 'METRIC_UNSPECIFIED', duration: '900s',
        });
        return null;  // the stream brings the silenced state
      }),
      act('Resolve', (x) => call('AlertService/ResolveAlert', { name: x.name }))));
}

let renderedAlerts = '';

function renderAlerts() {
  const open = [...state.alerts.values()].sort((a, b) =>
    (PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority]) ||
    ((a.state === 'ALERT_STATE_ACTIVE' ? 0 : 1) - (b.state === 'ALERT_STATE_ACTIVE' ? 0 : 1)) ||
    (Number(b.raiseTimeMs) - Number(a.raiseTimeMs)));
  // Unchanged (alerts and the beds they name): leave the list, and the
  // keyboard focus in it, alone.
  const signature = JSON.stringify(open.map((a) => [a, bedOf(a.patient)]));
  if (signature === renderedAlerts) return;
  renderedAlerts = signature;
  const focused = document.activeElement && document.activeElement.closest('[data-alert]');
  const keep = focused ? [focused.getAttribute('data-alert'), document.activeElement.textContent] : null;
  $('alerts').replaceChildren(...(open.length ? open.map(alertItem) : [el('li', { class: 'none' }, 'None open.')]));
  $('alert-count').textContent = open.length ? `(${open.length})` : '';
  if (keep) {
    const item = document.querySelector(`[data-alert="${CSS.escape(keep[0])}"]`);
    const buttons = item ? [...item.querySelectorAll('button')] : [];
    const again = buttons.find((x) => x.textContent === keep[1]) || buttons[0];
    if (again) again.focus();
  }
}

// ---- alarm burden: the ward's last 24 hours ------------------------------------

const seconds = (d) => (d ? parseFloat(d) : null);

function duration(d) {
  const s = seconds(d);
  if (s === null) return '\u2013';
  if (s < 10) return `${s.toFixed(1)} s`;
  return s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`;
}

async function refreshBurden() {
  try {
    const r = await call('AlertService/GetAlarmBurden', { parent: parent(), ward: state.ward, top: 5 });
    const g = (r.wards || []).find((w) => w.ward === state.ward) || r.total;
    const figures = [
      ['Alerts raised', `${g.alertsRaised} (${g.alertsPerPatientDay.toFixed(1)} per patient-day)`],
      ['Acknowledged', `${g.acknowledged}`],
      ['Time to acknowledge', `median ${duration(g.timeToAcknowledgeP50)}, 90 % within ${duration(g.timeToAcknowledgeP90)}`],
      ['Resolved unacknowledged', Number(g.resolved) ? `${g.resolvedUnacknowledged} of ${g.resolved} (${Math.round(100 * g.shareResolvedUnacknowledged)} %)` : '\u2013'],
      ['Escalated', `${g.escalated}`],
    ];
    $('burden').replaceChildren(...figures.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    $('burden-noisy').replaceChildren(...(r.noisiestPatients || []).map((p) =>
      el('li', {}, `${bedOf(p.name)}: ${p.alertsRaised} alert${p.alertsRaised === '1' ? '' : 's'}`)));
  } catch (e) {
    $('burden').replaceChildren(el('dt', {}, 'Not available'), el('dd', {}, e.message));
  }
}

let burdenTimer = null;
function refreshBurdenSoon() {
  clearTimeout(burdenTimer);
  burdenTimer = setTimeout(refreshBurden, 1000);
}

async function refreshBurdenLoop(generation) {
  while (generation === state.generation) {
    await refreshBurden();
    await sleep(BURDEN_REFRESH_MS);
  }
}

// ---- sound: a short cue per priority, once the user turned it on -------------

function cue(priority) {
  if (!state.audio) return;
  const beeps = { PRIORITY_HIGH: [988, 3], PRIORITY_MEDIUM: [659, 2], PRIORITY_LOW: [523, 1] }[priority];
  if (!beeps) return;
  const [freq, count] = beeps;
  for (let i = 0; i < count; i++) {
    const osc = state.audio.createOscillator(), gain = state.audio.createGain();
    const t = state.audio.currentTime + i * 0.25;
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.2, t);
    gain.gain.setValueAtTime(0, t + 0.15);
    osc.connect(gain).connect(state.audio.destination);
    osc.start(t);
    osc.stop(t + 0.16);
  }
}

function toggleSound() {
  const b = $('sound');
  if (state.audio) {
    state.audio.close();
    state.audio = null;
  } else {
    state.audio = new AudioContext();
  }
  b.setAttribute('aria-pressed', String(!!state.audio));
  b.textContent = `Sound: ${state.audio ? 'on' : 'off'}`;
}

// ---- start -------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  const params = new URLSearchParams(location.search);
  $('ward').value = params.get('ward') || sessionStorage.getItem('healthtwin.ward') || '';
  $('sign-in-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('sign-in-error').textContent = '';
    try {
      await signIn($('token').value.trim(), $('ward').value.trim());
      $('token').value = '';
    } catch (err) {
      $('sign-in-error').textContent = `Cannot open the ward: ${err.message}`;
    }
  });
  $('sign-out').addEventListener('click', signOut);
  $('sound').addEventListener('click', toggleSound);
  const saved = sessionStorage.getItem('healthtwin.token');
  if (saved && $('ward').value)
    signIn(saved, $('ward').value).catch((err) => {
      sessionStorage.removeItem('healthtwin.token');
      $('sign-in-error').textContent = `Sign in again: ${err.message}`;
    });
});
