"""The studio API in process (TestClient): job lifecycle, progress events, inpainting that keeps
the rest, the Music Transformer path, TTL cleanup, and rejection of bad uploads and ids."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import symusic
from PIL import Image

from tests.web.conftest import chord_midi, wait_done


def run_job(client, request: dict | None = None, midi: bytes | None = None, name: str = "in.mid") -> str:
    if midi is None:
        res = client.post("/jobs", json=request or {})
    else:
        res = client.post("/jobs", data={"request": json.dumps(request or {})}, files={"midi": (name, midi)})
    assert res.status_code == 202, res.text
    info = wait_done(client, res.json()["job_id"])
    assert info["status"] == "succeeded", info
    return info["job_id"]


def outside(notes, start, end):
    return sorted(tuple(n) for n in notes if not start <= n[0] < end)


def test_job_lifecycle_with_progress_events(make_client):
    client = make_client()
    res = client.post("/jobs", json={"seed": 3, "length_bars": 3, "temperature": 0.9})
    assert res.status_code == 202
    job_id = res.json()["job_id"]
    with client.websocket_connect(f"/jobs/{job_id}/events") as ws:
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(ws.receive_json())
    assert [e["status"] for e in events if e["type"] == "status"] == ["queued", "running"]
    progress = [e for e in events if e["type"] == "progress"]
    assert {e["level"] for e in progress} == {"bars", "beats", "steps", "notes"}  # every level reports
    assert {e["window"] for e in progress} == {0, 1}  # 3 bars from a 2-bar model: two windows
    assert all(1 <= e["step"] <= e["total"] for e in progress)
    fractions = [e["fraction"] for e in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[-1]["type"] == "done" and events[-1]["summary"]["bars"] == 3
    assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"

    roll = client.get(f"/jobs/{job_id}/roll").json()
    assert roll["n_steps"] == 48 and [lv["name"] for lv in roll["levels"]] == ["bars", "beats", "steps", "notes"]
    assert len(roll["curves"]["density"]) == len(roll["curves"]["tempo"]) == 3
    assert roll["notes"], "the tiny trained model writes notes"
    midi = client.get(f"/jobs/{job_id}/midi")
    assert midi.headers["content-type"] == "audio/midi"
    score = symusic.Score.from_midi(midi.content)
    assert score.note_num() == len(roll["notes"])
    first = min(score.tracks[0].notes, key=lambda n: (n.time, n.pitch))
    assert (first.time * 4 // score.tpq, first.pitch) == tuple(min(roll["notes"])[:2])
    for view in ("roll", "levels"):
        png = client.get(f"/jobs/{job_id}/png", params={"view": view})
        assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size[0] > 100


def test_inpaint_and_resample_change_only_the_chosen_range_and_levels(make_client):
    client = make_client()
    base = run_job(client, {"seed": 1, "length_bars": 2})
    before = client.get(f"/jobs/{base}/roll").json()
    inpainted = run_job(client, {"seed": 7, "source_job": base, "region": {"start_step": 16, "end_step": 24}})
    after = client.get(f"/jobs/{inpainted}/roll").json()
    assert outside(after["notes"], 16, 24) == outside(before["notes"], 16, 24)
    assert after["notes"] != before["notes"]
    assert after["curves"]["density"][0] == before["curves"]["density"][0]  # bar 0's plan is kept
    assert after["changed"] == {"start_step": 16, "end_step": 24, "levels": [0, 1, 2, 3]}

    notes_only = run_job(client, {"seed": 8, "source_job": base, "target_levels": [3]})
    resampled = client.get(f"/jobs/{notes_only}/roll").json()
    for old, new in zip(before["levels"][:3], resampled["levels"][:3]):
        assert old["cells"] == new["cells"], f"level {old['name']} was not a target but changed"
    assert resampled["curves"] == before["curves"]
    assert resampled["notes"] != before["notes"]


def test_edited_notes_are_kept_as_context(make_client):
    client = make_client()
    base = run_job(client, {"seed": 2})
    notes = [n for n in client.get(f"/jobs/{base}/roll").json()["notes"] if n[0] >= 8]
    notes.append([2, 50, 3, 99])  # the user's note in bar 1, outside the region
    edits = [{"start": s, "pitch": p, "duration": d, "velocity": v} for s, p, d, v in notes]
    job = run_job(client, {"seed": 3, "source_job": base, "source_notes": edits,
                           "region": {"start_step": 16, "end_step": 32}})
    after = client.get(f"/jobs/{job}/roll").json()["notes"]
    assert outside(after, 16, 32) == outside(notes, 16, 32)
    assert [2, 50, 3, 99] in after


def test_uploaded_source_keeps_its_structure(make_client, tmp_path):
    client = make_client()
    midi = chord_midi(tmp_path / "chords.mid").read_bytes()
    job = run_job(client, {"midi_use": "source", "target_levels": [2, 3], "seed": 4}, midi, "chords.mid")
    roll = client.get(f"/jobs/{job}/roll").json()
    beats = roll["levels"][1]
    assert beats["name"] == "beats"
    by_beat = {}
    for step, pitch in beats["cells"]:
        by_beat.setdefault(step // 4, set()).add(pitch)
    # the upload's chords, beat by beat: C major in bar 1, D major in bar 2 (kept, not resampled)
    assert by_beat == {b: ({60, 64, 67} if b < 4 else {62, 66, 69}) for b in range(8)}
    assert client.get(f"/jobs/{job}").json()["request"]["upload"] == "chords.mid"


def test_a_source_longer_than_the_limit_is_cut_and_the_result_says_so(make_client, tmp_path):
    client = make_client()
    score = symusic.Score(480)  # a C major chord per beat for 11 bars; the test registry allows 8
    track = symusic.Track("chords", 0, False)
    for beat in range(44):
        track.notes.extend(symusic.Note(beat * 480, 400, p, 80) for p in (60, 64, 67))
    score.tracks.append(track)
    score.dump_midi(str(tmp_path / "long.mid"))
    midi = (tmp_path / "long.mid").read_bytes()
    job = run_job(client, {"midi_use": "source", "target_levels": [3], "seed": 1}, midi, "long.mid")
    info = client.get(f"/jobs/{job}").json()
    assert info["summary"]["bars"] == 8
    assert info["summary"]["notices"] == [
        "the uploaded MIDI has 11 bars from its first downbeat; the first 8 were used (limits.max_length_bars)"]
    short = run_job(client, {"midi_use": "source", "target_levels": [3], "seed": 1},
                    chord_midi(tmp_path / "short.mid").read_bytes(), "short.mid")
    assert client.get(f"/jobs/{short}").json()["summary"]["notices"] == []


def test_chroma_upload_sets_the_global_chroma(registry, tmp_path):
    from datamodules.piano_roll import piece_chroma
    from web.schemas import GenerationRequest

    path = chord_midi(tmp_path / "d.mid", pitches=(62, 66, 69))
    score = symusic.Score(str(path))
    plan = registry.engine(None).prepare(GenerationRequest(midi_use="chroma"), score, path, None)
    assert np.allclose(plan.chroma, piece_chroma(score)) and plan.chroma[6] > 0  # F# of D major


def test_music_transformer_plain_and_conditioned(make_client, tmp_path):
    client = make_client()
    res = client.post("/jobs", json={"model": "mt", "seed": 1, "max_new_tokens": 24})
    job_id = res.json()["job_id"]
    with client.websocket_connect(f"/jobs/{job_id}/events") as ws:
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(ws.receive_json())
    steps = [e["step"] for e in events if e["type"] == "progress"]
    assert events[-1]["type"] == "done" and steps == list(range(1, len(steps) + 1)) and steps
    assert events[-1]["summary"]["family"] == "music_transformer"
    midi = chord_midi(tmp_path / "c.mid").read_bytes()
    job = run_job(client, {"model": "mt", "midi_use": "conditioning", "length_bars": 2}, midi)
    progress = [e for e in client.app.state.jobs.get(job).events if e["type"] == "progress"]
    assert progress and progress[-1]["bars"] == 2 and progress[-1]["step"] == len(progress)  # one per token
    score = symusic.Score.from_midi(client.get(f"/jobs/{job}/midi").content)
    names = [t.name for t in score.tracks]
    assert "CONDITIONING" in names
    cond = score.tracks[names.index("CONDITIONING")]
    assert sorted({n.pitch for n in cond.notes if n.time < 4 * score.tpq}) == [60, 64, 67]
    bad = client.post("/jobs", json={"model": "mt", "region": {"start_step": 0, "end_step": 4}})
    assert bad.status_code == 422 and "fractal" in bad.json()["message"]


def test_ttl_cleanup_deletes_old_jobs_on_schedule(make_client):
    client = make_client(ttl_s=0.4, cleanup_interval_s=0.1)
    jobs = client.app.state.jobs
    old = run_job(client)
    assert (jobs.root / old).is_dir()
    deadline = time.monotonic() + 10
    while (jobs.root / old).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (jobs.root / old).exists(), "the scheduled cleaner did not delete the expired job"
    gone = client.get(f"/jobs/{old}/midi")
    assert gone.status_code == 404 and "deleted after" in gone.json()["message"]


def test_cleanup_spares_young_and_unfinished_jobs(tmp_path):
    from web.jobs import JobManager

    manager = JobManager(tmp_path / "jobs", ttl_s=100)
    stale = manager.root / ("a" * 32)  # a job dir left by an earlier server process
    stale.mkdir()
    (stale / "job.json").write_text(json.dumps({"status": "succeeded", "created": 0, "finished": 10}))
    young = manager.create({})
    young.status, young.finished = "succeeded", time.time()
    preparing = manager.create({})
    (manager.root / "not-a-job").mkdir()
    assert manager.cleanup() == [stale.name]
    assert young.dir.is_dir() and preparing.dir.is_dir() and (manager.root / "not-a-job").is_dir()
    assert sorted(manager.cleanup(now=time.time() + 101)) == [young.id]  # preparing: never


def test_concurrency_limit_and_queue(tmp_path):
    import threading

    from web.jobs import JobError, JobManager

    manager = JobManager(tmp_path / "jobs", max_concurrent=1, max_queued=1)
    release, running = threading.Event(), []

    def blocking(job):
        running.append(job.id)
        release.wait(10)
        return {"ok": True}

    first, second = manager.create({}), None
    manager.start_job(first, blocking)
    second = manager.create({})
    manager.start_job(second, blocking)
    time.sleep(0.2)
    assert running == [first.id] and second.status == "queued"  # one at a time
    try:
        manager.create({})
        raise AssertionError("a third job over max_concurrent + max_queued was accepted")
    except JobError as err:
        assert err.status == 429
    release.set()
    deadline = time.monotonic() + 5
    while not second.done and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.status == second.status == "succeeded" and running == [first.id, second.id]
    manager.shutdown()
    again = JobManager(tmp_path / "jobs")  # a restarted server finds the finished jobs on disk
    assert again.get(first.id).status == "succeeded" and again.get(first.id).summary == {"ok": True}


def test_bad_uploads_are_rejected_with_clear_4xx(make_client, tmp_path):
    client = make_client()
    jobs = client.app.state.jobs
    good = chord_midi(tmp_path / "c.mid").read_bytes()
    empty = symusic.Score(480)
    empty.tracks.append(symusic.Track("empty", 0, False))
    empty.dump_midi(str(tmp_path / "empty.mid"))
    high = symusic.Score(480)
    high.tracks.append(symusic.Track("high", 0, False))
    high.tracks[0].notes.append(symusic.Note(0, 480, 100, 80))  # above the model's 48..71
    high.dump_midi(str(tmp_path / "high.mid"))
    cases = [
        (b"hello, not a midi", {"midi_use": "chroma"}, 422, "not a Standard MIDI File"),
        (good[:20], {"midi_use": "chroma"}, 422, "unreadable"),
        (b"MThd" + b"\0" * 30_000, {"midi_use": "chroma"}, 413, "upload limit"),
        (b"", {"midi_use": "chroma"}, 422, "empty"),
        ((tmp_path / "empty.mid").read_bytes(), {"midi_use": "chroma"}, 422, "no_notes"),
        ((tmp_path / "high.mid").read_bytes(), {"midi_use": "source"}, 422, "pitch range"),
        (good, {}, 422, "midi_use"),
    ]
    for data, request, status, words in cases:
        res = client.post("/jobs", data={"request": json.dumps(request)}, files={"midi": ("bad.mid", data)})
        assert res.status_code == status, (words, res.text)
        assert words in res.json()["message"] and res.json()["status"] == status
    assert not [p for p in jobs.root.iterdir()], "rejected uploads left job dirs behind"


def test_bad_ids_and_requests_are_rejected(make_client):
    client = make_client()
    for path in ("/jobs/abc", "/jobs/..%2F..%2Fetc%2Fpasswd/midi", "/jobs/" + "A" * 32 + "/roll",
                 "/jobs/%2e%2e/png"):
        res = client.get(path)
        assert res.status_code in (400, 404) and "message" in res.json(), path
    assert client.get("/jobs/abc").status_code == 400
    assert client.get("/jobs/" + "0" * 32 + "/midi").status_code == 404
    with client.websocket_connect("/jobs/..passwd/events") as ws:
        event = ws.receive_json()
    assert event["type"] == "error" and event["status"] == 400
    bad = [({"region": {"start_step": 8, "end_step": 4}}, "end_step"),
           ({"source_job": "../../etc"}, "32 hex"),
           ({"seed": 1, "surprise": True}, "surprise"),
           ({"model": "nope"}, "unknown model"),
           ({"region": {"start_step": 0, "end_step": 4}}, "source_job"),
           ({"source_job": "f" * 32}, "no job")]
    for request, words in bad:
        res = client.post("/jobs", json=request)
        assert 400 <= res.status_code < 500 and words in res.json()["message"], (request, res.text)
    base = run_job(client)
    res = client.post("/jobs", json={"source_job": base, "target_levels": [9]})
    assert res.status_code == 422 and "levels 0..3" in res.json()["message"]
    res = client.post("/jobs", content=b"x=1", headers={"content-type": "text/plain"})
    assert res.status_code == 415
