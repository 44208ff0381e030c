// The piano-roll canvas: notes, Level 0 curves on top, Level 1+ rolls overlaid, a time-range
// selection (snapped to beats) and a note editor (click toggles a note while editing).
"use strict";

const LEVEL_COLOURS = ["#49c6e5", "#f2b134", "#8bd17c", "#e06c9f", "#b08cff"];
const CURVE_COLOURS = { density: "#49c6e5", velocity: "#f2b134", tempo: "#e06c9f" };

function RollView(canvas, onChange) {
  const g = canvas.getContext("2d");
  const LEFT = 44, CURVES_H = 96, GAP = 10, BOTTOM = 18;
  const view = { roll: null, notes: [], edited: false, layers: {}, selection: null, edit: false, cursor: null };
  let drag = null;

  function pitchRange() {
    const ps = view.notes.map(n => n[1]);
    (view.roll ? view.roll.levels : []).forEach(l => l.cells.forEach(c => ps.push(c[1])));
    let lo = ps.length ? Math.min(...ps) - 2 : 48, hi = ps.length ? Math.max(...ps) + 2 : 72;
    if (hi - lo < 24) { const mid = (hi + lo) / 2; lo = Math.round(mid - 12); hi = lo + 24; }
    return [lo, hi];
  }

  function geometry() {
    const n = view.roll ? view.roll.n_steps : 64;
    const [lo, hi] = pitchRange();
    const top = CURVES_H + GAP, h = canvas.height - top - BOTTOM;
    return { n, lo, hi, top, h, sx: (canvas.width - LEFT) / n, sy: h / (hi - lo + 1) };
  }

  const xOf = (step, G) => LEFT + step * G.sx;
  const yOf = (pitch, G) => G.top + (G.hi - pitch) * G.sy;

  function drawGrid(G) {
    const r = view.roll, beat = r ? r.steps_per_beat : 4, bar = beat * (r ? r.beats_per_bar : 4);
    g.fillStyle = "#1c1c26";
    g.fillRect(LEFT, G.top, canvas.width - LEFT, G.h);
    for (let p = G.lo; p <= G.hi; p++) {
      if ([1, 3, 6, 8, 10].includes(p % 12)) { g.fillStyle = "#191921"; g.fillRect(LEFT, yOf(p, G), canvas.width, G.sy); }
      if (p % 12 === 0) { g.fillStyle = "#8a8aa0"; g.font = "10px sans-serif"; g.fillText("C" + (p / 12 - 1), 4, yOf(p, G) + G.sy); }
    }
    for (let s = 0; s <= G.n; s += beat) {
      g.strokeStyle = s % bar === 0 ? "#50506a" : "#2a2a38";
      g.beginPath(); g.moveTo(xOf(s, G), 0); g.lineTo(xOf(s, G), G.top + G.h); g.stroke();
      if (s % bar === 0 && s < G.n) { g.fillStyle = "#8a8aa0"; g.fillText(String(s / bar + 1), xOf(s, G) + 3, canvas.height - 5); }
    }
  }

  // Level 0 curves, one lane each: density (onsets per unit), velocity (0..127), tempo (qpm)
  function drawCurves(G) {
    const c = view.roll && view.roll.curves;
    g.fillStyle = "#1c1c26";
    g.fillRect(LEFT, 0, canvas.width - LEFT, CURVES_H);
    g.font = "10px sans-serif";
    if (!c) return;
    const kinds = ["density", "velocity", "tempo"].filter(k => view.layers["curve:" + k]);
    const lane = CURVES_H / Math.max(kinds.length, 1);
    kinds.forEach((kind, row) => {
      const vals = c[kind].map(v => (v === null ? null : Number(v)));
      const real = vals.filter(v => v !== null);
      const top = row * lane, y0 = top + lane - 4, span = lane - 14;
      g.fillStyle = CURVE_COLOURS[kind];
      g.fillText(kind, 4, top + 11);
      if (!real.length) return;
      let lo = kind === "velocity" ? 0 : Math.min(...real), hi = kind === "velocity" ? 127 : Math.max(...real);
      if (hi - lo < 1e-6) { lo -= 1; hi += 1; }  // a flat curve sits mid-lane
      g.strokeStyle = CURVE_COLOURS[kind]; g.lineWidth = 2; g.beginPath();
      let pen = false;
      vals.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        const y = y0 - (v - lo) / (hi - lo) * span;
        [i, i + 1].forEach(k => { const x = xOf(k * c.unit, G); pen ? g.lineTo(x, y) : g.moveTo(x, y); pen = true; });
      });
      g.stroke(); g.lineWidth = 1;
      const fmt = v => (Math.abs(v) >= 10 ? Math.round(v) : v.toFixed(1));
      g.fillText(`${fmt(Math.min(...real))}..${fmt(Math.max(...real))}${row === 0 ? "   from " + c.from : ""}`,
                 LEFT + 4, top + 11);
      g.strokeStyle = "#2a2a38"; g.beginPath(); g.moveTo(LEFT, top + lane); g.lineTo(canvas.width, top + lane); g.stroke();
    });
  }

  function draw() {
    const G = geometry();
    g.clearRect(0, 0, canvas.width, canvas.height);
    drawCurves(G);
    drawGrid(G);
    const r = view.roll;
    if (r && r.changed) {
      g.fillStyle = "rgba(120,120,255,0.07)";
      g.fillRect(xOf(r.changed.start_step, G), G.top, (r.changed.end_step - r.changed.start_step) * G.sx, G.h);
    }
    (r ? r.levels : []).forEach((level, i) => {
      if (!view.layers["level:" + level.index] || !level.cells.length) return;
      g.fillStyle = LEVEL_COLOURS[i % LEVEL_COLOURS.length];
      g.globalAlpha = 0.22;
      level.cells.forEach(([s, p]) => g.fillRect(xOf(s, G), yOf(p, G), level.unit * G.sx, G.sy));
      g.globalAlpha = 1;
    });
    if (view.layers.notes !== false) {
      view.notes.forEach(([s, p, d, v]) => {
        g.fillStyle = `hsl(${260 - v}, 80%, ${40 + v / 5}%)`;
        g.fillRect(xOf(s, G) + 0.5, yOf(p, G) + 0.5, Math.max(d * G.sx - 1, 2), Math.max(G.sy - 1, 1));
      });
    }
    if (view.selection) {
      const { start, end } = view.selection;
      g.fillStyle = "rgba(255,255,255,0.12)";
      g.fillRect(xOf(start, G), 0, (end - start) * G.sx, G.top + G.h);
      g.strokeStyle = "#fff"; g.strokeRect(xOf(start, G), 0, (end - start) * G.sx, G.top + G.h);
    }
    if (view.cursor !== null && view.cursor <= G.n) {
      g.strokeStyle = "#ff5050"; g.beginPath();
      g.moveTo(xOf(view.cursor, G), 0); g.lineTo(xOf(view.cursor, G), G.top + G.h); g.stroke();
    }
    canvas.dataset.notes = String(view.notes.length);
  }

  function locate(ev) {
    const rect = canvas.getBoundingClientRect(), G = geometry();
    const x = (ev.clientX - rect.left) * canvas.width / rect.width, y = (ev.clientY - rect.top) * canvas.height / rect.height;
    return { step: Math.max(0, Math.min(G.n - 1, Math.floor((x - LEFT) / G.sx))), pitch: G.hi - Math.floor((y - G.top) / G.sy), G };
  }

  function toggleNote(step, pitch) {
    const hit = view.notes.findIndex(([s, p, d]) => p === pitch && s <= step && step < s + d);
    if (hit >= 0) view.notes.splice(hit, 1);
    else view.notes.push([step, pitch, 2, 80]);
    view.edited = true;
    onChange("edit");
  }

  canvas.addEventListener("mousedown", ev => {
    if (!view.roll) return;
    const at = locate(ev);
    if (view.edit) { toggleNote(at.step, at.pitch); draw(); return; }
    drag = at.step;
    view.selection = null;
  });
  canvas.addEventListener("mousemove", ev => {
    if (drag === null) return;
    const beat = view.roll.steps_per_beat, at = locate(ev).step;
    const a = Math.min(drag, at), b = Math.max(drag, at) + 1;
    view.selection = { start: Math.floor(a / beat) * beat, end: Math.min(Math.ceil(b / beat) * beat, view.roll.n_steps) };
    draw();
  });
  window.addEventListener("mouseup", ev => {
    if (drag === null) return;
    if (!view.selection) {  // a click: select its beat
      const beat = view.roll.steps_per_beat, s = Math.floor(drag / beat) * beat;
      view.selection = { start: s, end: Math.min(s + beat, view.roll.n_steps) };
    }
    drag = null;
    draw();
    onChange("selection");
  });

  return {
    view,
    draw,
    setRoll(roll) {
      view.roll = roll;
      view.notes = roll.notes.map(n => n.slice());
      view.edited = false;
      view.selection = null;
      draw();
    },
    setLayer(key, on) { view.layers[key] = on; draw(); },
    setCursor(step) { view.cursor = step; draw(); },
    // canvas pixel at the middle of a grid cell (tests and scripts drive the canvas with it)
    pointOf(step, pitch) { const G = geometry(); return [xOf(step + 0.5, G), yOf(pitch, G) + G.sy / 2]; },
  };
}
