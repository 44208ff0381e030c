// The studio page: generate (POST /jobs), follow progress (WS /jobs/{id}/events), draw the roll
// (GET /jobs/{id}/roll), inpaint a selected range with chosen levels, play and download.
"use strict";

const $ = id => document.getElementById(id);
const USE_LABELS = { chroma: "global chroma", source: "source piece (inpaint / resample)", conditioning: "conditioning" };
const state = { models: [], model: null, job: null, roll: null, inpaints: 0, timer: null };
$("roll").width = Math.max(800, $("roll-wrap").clientWidth - 2);  // the roll spans the page
const rollView = RollView($("roll"), onRollChange);

function setStatus(text, kind = "idle") {
  $("status").textContent = text;
  $("status").className = kind === "error" ? "error" : "";
  document.body.dataset.state = kind;
}

function currentModel() { return state.models.find(m => m.name === $("model").value) || state.models[0]; }

function numberOrNull(id) { const v = $(id).value; return v === "" ? null : Number(v); }

function sampling() {
  const out = { model: $("model").value, seed: Number($("seed").value || 0) };
  const t = numberOrNull("temperature"), p = numberOrNull("top-p");
  if (t !== null) out.temperature = t;
  if (p !== null) out.top_p = p;
  return out;
}

async function loadModels() {
  const res = await fetch("/models");
  const body = await res.json();
  if (!res.ok) { setStatus(body.message, "error"); return; }
  state.models = body.models;
  $("model").innerHTML = body.models.map(m => `<option value="${m.name}">${m.name} (${m.family})</option>`).join("");
  $("model").value = body.default;
  onModelChange();
}

function onModelChange() {
  const m = currentModel();
  state.model = m;
  $("midi-use").innerHTML = m.midi_uses.map(u => `<option value="${u}">${USE_LABELS[u]}</option>`).join("");
  $("model-info").textContent = m.family === "fractal"
    ? `fractal: ${m.levels.map(l => l.name).join(" → ")}, window ${m.window_bars} bars`
    : `${m.family}${m.role_conditioned ? " (role-conditioned: " + m.roles.join(", ") + ")" : ""}`;
  $("regen-levels").innerHTML = m.family === "fractal" ? m.levels.map(l =>
    `<label><input type="checkbox" class="regen-level" value="${l.index}" checked> L${l.index} ${l.name}</label>`).join(" ") : "";
  $("inpaint-note").textContent = m.family === "fractal" ? "" : "inpainting needs a fractal checkpoint";
  updateInpaintButton();
}

function buildLayerToggles(roll) {
  const boxes = [];
  ["density", "velocity", "tempo"].forEach(k => boxes.push([`curve:${k}`, `L0 ${k}`, CURVE_COLOURS[k], true]));
  roll.levels.forEach((l, i) => {
    if (l.kinds.includes("notes")) boxes.push(["notes", "notes", "#ddd", true]);
    else if (l.cells.length) boxes.push([`level:${l.index}`, `L${l.index} ${l.name}`, LEVEL_COLOURS[i % LEVEL_COLOURS.length], l.index > 0]);
  });
  $("layer-toggles").innerHTML = boxes.map(([key, label, colour, on]) =>
    `<label class="toggle" style="border-left:4px solid ${colour}"><input type="checkbox" data-layer="${key}" ${on ? "checked" : ""}> ${label}</label>`).join(" ");
  $("layer-toggles").querySelectorAll("input").forEach(box => {
    rollView.view.layers[box.dataset.layer] = box.checked;
    box.addEventListener("change", () => rollView.setLayer(box.dataset.layer, box.checked));
  });
}

async function submit(request, file) {
  let res;
  if (file) {
    const form = new FormData();
    form.append("request", JSON.stringify(request));
    form.append("midi", file, file.name);
    res = await fetch("/jobs", { method: "POST", body: form });
  } else {
    res = await fetch("/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
  }
  const body = await res.json();
  if (!res.ok) { setStatus(`error ${res.status}: ${body.message}`, "error"); return; }
  follow(body.job_id);
}

function follow(jobId) {
  setStatus("queued", "running");
  $("progress").value = 0;
  $("generate").disabled = true;
  $("inpaint").disabled = true;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/jobs/${jobId}/events`);
  ws.onmessage = async msg => {
    const ev = JSON.parse(msg.data);
    if (ev.type === "status") setStatus(ev.status, "running");
    else if (ev.type === "progress") {
      $("progress").value = ev.fraction;
      const where = ev.windows > 1 ? ` (window ${ev.window + 1}/${ev.windows})` : "";
      setStatus(`${ev.level}: step ${ev.step}${ev.total ? "/" + ev.total : ""}${where}`, "running");
    } else if (ev.type === "done") {
      $("progress").value = 1;
      await showJob(jobId, ev.summary);
    } else if (ev.type === "error") {
      setStatus(`failed: ${ev.message}`, "error");
      $("generate").disabled = false;
      updateInpaintButton();
    }
  };
  ws.onerror = () => setStatus("lost the connection to the server", "error");
}

async function showJob(jobId, summary) {
  const res = await fetch(`/jobs/${jobId}/roll`);
  const roll = await res.json();
  if (!res.ok) { setStatus(roll.message, "error"); return; }
  state.job = jobId;
  state.roll = roll;
  $("roll").dataset.job = jobId;
  buildLayerToggles(roll);
  rollView.setRoll(roll);
  $("inpaint-note").textContent = roll.changed ? `changed: steps ${roll.changed.start_step}–${roll.changed.end_step}, levels ${roll.changed.levels.join(", ")}` : "";
  $("download").href = `/jobs/${jobId}/midi`;
  $("download").setAttribute("download", `musicplat_${jobId.slice(0, 8)}.mid`);
  $("download").classList.remove("disabled");
  $("png-link").href = `/jobs/${jobId}/png`;
  $("levels-link").href = `/jobs/${jobId}/png?view=levels`;
  $("levels-link").style.display = summary && summary.family === "fractal" ? "" : "none";
  $("play").disabled = false;
  $("stop").disabled = false;
  $("generate").disabled = false;
  const notices = summary && summary.notices && summary.notices.length ? ` (note: ${summary.notices.join("; ")})` : "";
  setStatus(`done: ${roll.notes.length} notes, ${roll.n_steps / (roll.steps_per_beat * roll.beats_per_bar)} bars${notices}`, "done");
  updateInpaintButton();
}

function onRollChange(what) {
  const sel = rollView.view.selection, r = state.roll;
  if (sel && r) {
    const bar = r.steps_per_beat * r.beats_per_bar;
    $("selection").textContent = `selected bars ${(sel.start / bar + 1).toFixed(2)} – ${(sel.end / bar + 1).toFixed(2)} (steps ${sel.start}–${sel.end})`;
  }
  if (what === "edit") $("inpaint-note").textContent = `${rollView.view.notes.length} notes (edited: kept as context)`;
  updateInpaintButton();
}

function updateInpaintButton() {
  const fractal = state.model && state.model.family === "fractal";
  const busy = document.body.dataset.state === "running";
  $("inpaint").disabled = !(fractal && state.job && rollView.view.selection && !busy && state.roll.levels.length > 1);
}

function generate() {
  const request = sampling();
  const bars = numberOrNull("length");
  if (bars !== null) request.length_bars = bars;
  const file = $("midi-file").files[0];
  if (file) request.midi_use = $("midi-use").value;
  submit(request, file);
}

function inpaint() {
  const sel = rollView.view.selection;
  const request = sampling();
  request.seed += ++state.inpaints;  // a new take each time
  request.source_job = state.job;
  request.region = { start_step: sel.start, end_step: sel.end };
  const levels = [...document.querySelectorAll(".regen-level:checked")].map(b => Number(b.value));
  if (!levels.length) { setStatus("choose at least one level to regenerate", "error"); return; }
  if (levels.length < document.querySelectorAll(".regen-level").length) request.target_levels = levels;
  if (rollView.view.edited) {
    request.source_notes = rollView.view.notes.map(([start, pitch, duration, velocity]) => ({ start, pitch, duration, velocity }));
  }
  submit(request, null);
}

function play() {
  const r = state.roll;
  const secPerStep = 60 / r.qpm / r.steps_per_beat;
  const from = rollView.view.selection ? rollView.view.selection.start : 0;
  Synth.play(rollView.view.notes, secPerStep, from);
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    const pos = Synth.position(secPerStep);
    if (pos === null || pos > r.n_steps) { clearInterval(state.timer); rollView.setCursor(null); return; }
    rollView.setCursor(pos);
  }, 40);
}

async function setupOutputs() {
  const outs = await Synth.midiOutputs();
  outs.forEach((o, i) => $("output").insertAdjacentHTML("beforeend", `<option value="${i}">MIDI: ${o.name}</option>`));
  $("output").addEventListener("change", () => Synth.useOutput($("output").value === "audio" ? null : outs[Number($("output").value)]));
}

$("model").addEventListener("change", onModelChange);
$("generate").addEventListener("click", generate);
$("inpaint").addEventListener("click", inpaint);
$("edit-mode").addEventListener("change", () => { rollView.view.edit = $("edit-mode").checked; });
$("play").addEventListener("click", play);
$("stop").addEventListener("click", () => { Synth.stop(); clearInterval(state.timer); rollView.setCursor(null); });
loadModels().then(setupOutputs);
rollView.draw();
