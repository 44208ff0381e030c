// Playback of a roll: a Web Audio oscillator synth, or a Web MIDI output when the browser has one.
"use strict";

const Synth = (() => {
  let ctx = null, voices = [], midiOut = null, midiTimers = [], startedAt = 0, playing = false;

  async function midiOutputs() {
    if (!navigator.requestMIDIAccess) return [];
    try {
      const access = await navigator.requestMIDIAccess();
      return [...access.outputs.values()];
    } catch (err) {
      return [];  // permission refused or no MIDI stack: the oscillator synth still works
    }
  }

  function useOutput(output) { midiOut = output || null; }

  function stop() {
    voices.forEach(v => { try { v.stop(); } catch (e) { /* already stopped */ } });
    voices = [];
    midiTimers.forEach(clearTimeout);
    midiTimers = [];
    if (midiOut) for (let ch = 0; ch < 16; ch++) midiOut.send([0xB0 + ch, 123, 0]);  // all notes off
    playing = false;
  }

  // notes: [[start_step, pitch, duration_steps, velocity]], secPerStep: seconds per grid step
  function play(notes, secPerStep, fromStep = 0) {
    stop();
    const todo = notes.filter(n => n[0] >= fromStep);
    if (midiOut) {
      const t0 = performance.now();
      todo.forEach(([s, p, d, v]) => {
        const on = (s - fromStep) * secPerStep * 1000, off = on + d * secPerStep * 1000;
        midiOut.send([0x90, p, v], t0 + on);
        midiOut.send([0x80, p, 0], t0 + off);
      });
    } else {
      ctx = ctx || new (window.AudioContext || window.webkitAudioContext)();
      const t0 = ctx.currentTime + 0.05, master = ctx.createGain();
      master.gain.value = 0.15;
      master.connect(ctx.destination);
      todo.forEach(([s, p, d, v]) => {
        const osc = ctx.createOscillator(), env = ctx.createGain();
        const on = t0 + (s - fromStep) * secPerStep, off = on + Math.max(d * secPerStep, 0.05);
        osc.type = "triangle";
        osc.frequency.value = 440 * Math.pow(2, (p - 69) / 12);
        env.gain.setValueAtTime(0, on);
        env.gain.linearRampToValueAtTime(v / 127, on + 0.01);
        env.gain.exponentialRampToValueAtTime(0.001, off);
        osc.connect(env).connect(master);
        osc.start(on);
        osc.stop(off + 0.05);
        voices.push(osc);
      });
    }
    startedAt = performance.now() - fromStep * secPerStep * 1000;
    playing = true;
  }

  // the grid step being heard now (for the cursor), or null when stopped
  function position(secPerStep) {
    return playing ? (performance.now() - startedAt) / 1000 / secPerStep : null;
  }

  return { midiOutputs, useOutput, play, stop, position };
})();
