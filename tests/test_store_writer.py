"""The embeddings store written as it goes (format 2): readers see every flushed row and
nothing else, numpy alone reads it, a writer that dies leaves everything up to its last
flush readable (the torn tail cut and reported, never fatal), a full disk stops it with
one line, and ``kill -9`` of a real ``scenecls run --embeddings`` leaves a store that
``search`` and ``relabel`` use."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from scenecls.archive.stored import collect
from scenecls.cli import main
from scenecls.errors import OutputError, UsageError
from scenecls.model.embeddings_store import FRAME_DTYPE, StoreError, open_embeddings
from scenecls.model.growing_npy import HEADER_BYTES
from scenecls.model.store_writer import StoreWriter
from scenecls.video.sinks.embeddings import EmbeddingsSink

from .conftest import MEDIA
from .outputs import one_line_error, read_jsonl

D = 8
LONG = MEDIA / "one-by-one-person-detection.mp4"  # 139 s, 1394 frames


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def unit(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def records(times: list[float], rows: list[int], encoded: list[bool]) -> np.ndarray:
    """FRAME_DTYPE records of frames that reuse (or are) row ``rows[i]``."""
    rec = np.zeros(len(times), FRAME_DTYPE)
    rec["index"] = np.arange(len(times))
    rec["time"] = times
    rec["left"] = rec["right"] = rows
    rec["encoded"] = encoded
    return rec


META = {"model": "test/model", "model_fingerprint": "fp-a", "source": "cam"}


def test_readers_see_flushed_rows_only_and_numpy_reads_it_alone(tmp_path: Path) -> None:
    clock = Clock()
    store = tmp_path / "run.embeddings"
    w = StoreWriter(store, META, D, "float32", flush_seconds=10, clock=clock)
    rows = unit(3)
    w.add(rows[:2], records([0.0, 0.1, 0.2, 0.3], [0, 0, 1, 1], [True, False, True, False]))
    seen = open_embeddings(store)
    assert seen.rows == 0 and len(seen.frames) == 0 and seen.writing  # nothing flushed yet
    clock.now = 10.0  # the next add flushes
    w.add(rows[2:], records([0.4, 0.5], [2, 2], [True, False]))
    seen = open_embeddings(store)
    assert seen.rows == 3 and len(seen.frames) == 6 and seen.writing and not seen.notes
    np.testing.assert_array_equal(np.asarray(seen.embeddings), rows)
    # spans: each row until the next; the last one (still open) until its last frame
    np.testing.assert_allclose(seen.spans, [[0.0, 0.2], [0.2, 0.4], [0.4, 0.5]])
    # numpy alone, as the format documents: the header holds the flushed count
    alone = np.load(store / "embeddings.npy", mmap_mode="r")
    assert alone.shape == (3, D)
    assert len(np.load(store / "frames.npy")) == 6
    assert json.loads((store / "meta.json").read_text())["complete"] is False
    w.close(end_time=0.6)
    done = open_embeddings(store)
    assert done.meta["complete"] and not done.writing and done.end == 0.6
    np.testing.assert_allclose(done.spans[-1], [0.4, 0.6])
    np.testing.assert_array_equal(done.frame_embeddings(), rows[[0, 0, 1, 1, 2, 2]])


def test_flush_at_least_every_flush_seconds(tmp_path: Path) -> None:
    clock = Clock()
    store = tmp_path / "s.embeddings"
    w = StoreWriter(store, META, D, flush_seconds=2.0, clock=clock)
    rows = unit(20)
    for i in range(20):
        clock.now = i * 0.5
        w.add(rows[i : i + 1], records([i * 0.5], [i], [True]))
        flushed = open_embeddings(store).rows
        # everything up to the last flush is visible; at most 2 s of rows are not
        assert i + 1 - flushed <= 4, (i, flushed)
    w.close()


def _die_mid_write(store: Path, flushed: int, unflushed: int) -> None:
    """A writer process that flushes ``flushed`` rows, appends ``unflushed`` more and a
    half row, and dies without closing (as after ``kill -9``)."""
    code = textwrap.dedent(
        f"""
        import os, numpy as np
        from scenecls.model.store_writer import StoreWriter
        from scenecls.model.embeddings_store import FRAME_DTYPE
        w = StoreWriter({str(store)!r}, {META!r}, {D}, "float32", flush_seconds=1e9)
        def add(i):
            r = np.zeros(1, FRAME_DTYPE); r["index"] = i; r["time"] = i * 0.5
            r["left"] = r["right"] = i; r["encoded"] = True
            w.add(np.eye({D}, dtype=np.float32)[[i % {D}]], r)
        for i in range({flushed}):
            add(i)
        w.flush()
        for i in range({flushed}, {flushed + unflushed}):
            add(i)
        w._rows._f.write(b"\\x01" * 5)  # a torn row
        w._rows._f.flush(); w._frames._f.flush()
        os._exit(9)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60)


def test_a_writer_that_dies_leaves_everything_up_to_its_last_flush(tmp_path: Path) -> None:
    store = tmp_path / "dead.embeddings"
    _die_mid_write(store, flushed=5, unflushed=3)
    got = open_embeddings(store)  # never fatal
    assert got.rows == 5 and len(got.frames) == 5 and not got.writing
    assert len(got.notes) == 1
    assert "ended without closing" in got.notes[0] and "3 rows after it cut" in got.notes[0]
    assert got.end == pytest.approx(2.0)
    np.testing.assert_array_equal(np.asarray(got.embeddings), np.eye(D, dtype=np.float32)[:5])
    # search reads it and says what was cut
    videos, problems = collect([store])
    assert len(videos) == 1 and not problems


def test_frames_pointing_past_the_rows_are_cut(tmp_path: Path) -> None:
    """A frames file flushed further than the rows (a copy taken mid-flush): the frames
    that point at rows that are not there are cut, nothing before them."""
    store = tmp_path / "s.embeddings"
    w = StoreWriter(store, META, D, flush_seconds=1e9)
    w.add(unit(4), records([0, 1, 2, 3], [0, 1, 2, 3], [True] * 4))
    w.flush()
    w.abandon()
    path = store / "embeddings.npy"
    raw = bytearray(path.read_bytes())
    raw[:HEADER_BYTES] = raw[:HEADER_BYTES].replace(b"(4, 8)", b"(2, 8)")
    path.write_bytes(bytes(raw))
    times = store / "times.npy"
    got = open_embeddings(store)
    assert got.rows == 2 and list(got.frames["time"]) == [0.0, 1.0]
    assert times.is_file()


def test_damaged_or_foreign_stores_are_named(tmp_path: Path) -> None:
    store = tmp_path / "s.embeddings"
    w = StoreWriter(store, META, D, flush_seconds=1e9)
    w.add(unit(3), records([0, 1, 2], [0, 1, 2], [True] * 3))
    w.close()
    with open(store / "times.npy", "r+b") as f:  # rows lost below the flushed count
        f.truncate(HEADER_BYTES + 8)
    with pytest.raises(StoreError, match=r"s\.embeddings: damaged or truncated"):
        open_embeddings(store)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a scenecls embeddings store"):
        open_embeddings(tmp_path / "empty")
    (tmp_path / "newer").mkdir()
    (tmp_path / "newer" / "meta.json").write_text(
        json.dumps({"format": "scenecls-embeddings", "version": 99})
    )
    with pytest.raises(StoreError, match="upgrade scenecls"):
        open_embeddings(tmp_path / "newer")


def test_output_names_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"without \.npz, e\.g\. .*old\.embeddings"):
        EmbeddingsSink(tmp_path / "old.npz")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="exists and is not an embeddings store"):
        EmbeddingsSink(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(UsageError, match="flush-seconds"):
        EmbeddingsSink(tmp_path / "x.embeddings", flush_seconds=0)


def test_a_full_disk_stops_the_store_in_one_line_and_keeps_what_was_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "s.embeddings"
    w = StoreWriter(store, META, D, flush_seconds=1e9)
    w.add(unit(2), records([0, 1], [0, 1], [True, True]))
    w.flush()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    w.add(unit(1), records([2], [2], [True]))
    with pytest.raises(OutputError) as caught:
        w.flush()
    assert "the disk is full" in str(caught.value) and "\n" not in str(caught.value)
    monkeypatch.undo()
    w.abandon()
    assert open_embeddings(store).rows == 2


def test_kill_9_of_run_leaves_a_searchable_store(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "long.embeddings"
    jsonl = tmp_path / "long.jsonl"
    cmd = [
        sys.executable, "-m", "scenecls", "run", str(LONG), "--model", str(tiny_bundle),
        "--labels", "scenes", "--no-progress", "--batch", "4", "--jsonl", str(jsonl),
        "--embeddings", str(store), "--embeddings-dtype", "float32", "--flush-seconds", "0.2",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    seen = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen < 100:
            if (store / "meta.json").is_file():
                live = open_embeddings(store)  # valid at every moment while written
                assert live.writing or live.meta["complete"]
                assert live.frame_embeddings().shape == (len(live.frames), live.embeddings.shape[1])
                seen = max(seen, len(live.frames))
            time.sleep(0.05)
        assert seen >= 100, "the run never got going"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    got = open_embeddings(store)
    assert not got.meta["complete"] and not got.writing
    assert len(got.frames) >= seen  # nothing a reader saw flushed was lost
    assert any("ended without closing" in n for n in got.notes)
    lines = read_jsonl(jsonl)
    assert len(got.frames) <= len(lines) + 4  # the jsonl is written per frame, too
    times = [line["time"] for line in lines[: len(got.frames)]]
    np.testing.assert_allclose(got.frames["time"], times, atol=1e-6)

    capsys.readouterr()
    assert main(["search", str(store), "a person", "--top", "3", "--model", str(tiny_bundle)]) == 0
    out, err = capsys.readouterr()
    assert 1 <= len(out.strip().splitlines()) <= 3  # moments of what was flushed
    assert "note: " in err and "ended without closing" in err
    out_dir = tmp_path / "relabelled"
    relabel = ["relabel", str(store), "--labels", "room,street", "--out", str(out_dir)]
    code = main([*relabel, "--model", str(tiny_bundle)])
    assert code == 0, one_line_error(capsys.readouterr().err)
    relabelled = read_jsonl(out_dir / f"{LONG.name}.jsonl")  # named by its video
    assert len(relabelled) == len(got.frames)
