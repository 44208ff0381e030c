#!/usr/bin/env bash
# Idempotent JACK setup for the realtime runtime, its tests and bench (CI runs as root).
#   bash realtime/jack_setup.sh            # install jackd2 if missing, start a dummy server, wait for it
# Env: JACK_RATE (48000), JACK_PERIOD (64), JACK_LOG (/tmp/jackd.log), JACK_WAIT_S (10).
# The dummy driver needs no sound card: it is a real JACK server with a software clock, so
# MIDI ports between clients behave exactly as on a machine with audio hardware.
set -euo pipefail

RATE="${JACK_RATE:-48000}"
PERIOD="${JACK_PERIOD:-64}"
LOG="${JACK_LOG:-/tmp/jackd.log}"
WAIT_S="${JACK_WAIT_S:-10}"

if ! command -v jackd >/dev/null 2>&1 || ! command -v jack_wait >/dev/null 2>&1; then
    if [ "$(id -u)" != "0" ]; then
        echo "jack_setup: jackd2 is not installed; run as root or: sudo apt-get install jackd2" >&2
        exit 1
    fi
    echo "jack_setup: installing jackd2" >&2
    export DEBIAN_FRONTEND=noninteractive
    # jackd2's debconf question (realtime priority) must not block a non-interactive install
    echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections 2>/dev/null || true
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends jackd2 >/dev/null
fi

jack_running() { [ "$(jack_wait -c 2>/dev/null)" = "running" ]; }

if jack_running; then
    echo "jack_setup: JACK server already running" >&2
    exit 0
fi

echo "jack_setup: starting jackd -d dummy -r $RATE -p $PERIOD (log: $LOG)" >&2
nohup jackd -d dummy -r "$RATE" -p "$PERIOD" >"$LOG" 2>&1 &
jack_wait -w -t "$WAIT_S" >/dev/null 2>&1 || true
if ! jack_running; then
    echo "jack_setup: jackd did not come up within ${WAIT_S}s; see $LOG" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
fi
echo "jack_setup: JACK server is up" >&2
