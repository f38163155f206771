"""The embeddings file and the arithmetic that search and relabel rely on: the format
round trip (numpy alone can read it), damage detection, spans, the float16 scan, exact
top-k, moments against brute force, and the blends the pipeline and relabel share."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scenecls.archive.moments import Moment, file_moments, search
from scenecls.archive.stored import StoredVideo, collect, one_model
from scenecls.errors import UsageError
from scenecls.model.embeddings_store import (
    FRAME_DTYPE,
    StoreError,
    open_embeddings,
    row_spans,
    write_embeddings,
)
from scenecls.model.scoring import blended_similarities, mix_rows, similarities
from scenecls.model.vector_scan import scan, top_k
from scenecls.video.sinks.files import numbers

D = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def make_store(
    path: Path,
    rows: np.ndarray,
    *,
    dtype: str = "float16",
    fingerprint: str = "fp-a",
    step: float = 0.5,
    input_path: str | None = None,
) -> Path:
    """A file whose every row is its own frame, ``step`` s apart."""
    n = len(rows)
    frames = np.zeros(n, FRAME_DTYPE)
    frames["index"] = np.arange(n)
    frames["time"] = np.arange(n) * step
    frames["left"] = frames["right"] = np.arange(n)
    frames["encoded"] = True
    end = n * step
    spans = row_spans(frames, n, end, np.zeros((0, 2)))
    meta = {
        "format": "scenecls-embeddings", "version": 1, "model": "test/model",
        "model_fingerprint": fingerprint, "embed_dim": rows.shape[1], "source": path.name,
        "input": input_path, "end": end, "dtype": dtype,
    }  # fmt: skip
    write_embeddings(
        path, meta, rows.astype(dtype), n, rows.shape[1], dtype, frames["time"], spans, frames,
        np.zeros((0, 2)),
    )  # fmt: skip
    return path


def test_a_file_reads_back_with_numpy_alone_and_memory_mapped(tmp_path: Path) -> None:
    rows = unit(np.random.default_rng(0).standard_normal((50, D)))
    path = make_store(tmp_path / "a.npz", rows)
    with np.load(path) as f:  # what the README promises: numpy alone
        meta = json.loads(str(f["meta"]))
        assert meta["format"] == "scenecls-embeddings" and meta["model_fingerprint"] == "fp-a"
        assert f["embeddings"].dtype == np.float16 and f["embeddings"].shape == (50, D)
        assert np.array_equal(f["embeddings"], rows.astype(np.float16))
        assert f["frames"].dtype == FRAME_DTYPE and f["spans"].shape == (50, 2)
    store = open_embeddings(path)
    assert isinstance(store.embeddings, np.memmap)
    assert store.embeddings.ctypes.data % 64 == 0  # aligned for the scan
    assert np.array_equal(store.embeddings, rows.astype(np.float16))
    assert not list(tmp_path.glob(".*partial"))


def test_float16_rows_keep_cosine_above_0_9999() -> None:
    rows = unit(np.random.default_rng(1).standard_normal((5000, 512)))
    back = rows.astype(np.float16).astype(np.float32)
    cos = (rows * back).sum(1) / np.linalg.norm(back, axis=1)
    assert cos.min() >= 0.9999


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda b: b[: len(b) // 2], "damaged or truncated"),
        (lambda b: b[:-30], "damaged or truncated"),
        (lambda b: b[:40], "damaged or truncated"),
        (lambda b: b"not a zip at all", "is not a scenecls embeddings file"),
    ],
)
def test_damaged_files_are_named(tmp_path: Path, damage, why: str) -> None:  # type: ignore[no-untyped-def]
    path = make_store(tmp_path / "a.npz", unit(np.random.default_rng(0).standard_normal((400, D))))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(StoreError, match=why) as info:
        open_embeddings(path)
    assert str(path) in str(info.value)


def test_a_zip_that_is_no_embeddings_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(StoreError, match="not a scenecls embeddings file"):
        open_embeddings(path)
    with zipfile.ZipFile(path, "a") as z:  # a meta but inconsistent arrays
        z.writestr("meta.npy", b"")
    with pytest.raises(StoreError, match=str(path)):
        open_embeddings(path)


def test_row_spans_cover_the_frames_each_row_stands_for() -> None:
    frames = np.zeros(6, FRAME_DTYPE)
    frames["time"] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    frames["left"] = [0, 0, 0, 1, 1, 1]
    frames["right"] = [0, 1, 1, 1, 1, 1]
    frames["weight"] = [0.0, 0.2, 0.7, 0.0, 0.0, 0.0]
    frames["encoded"] = [True, False, False, True, False, False]
    spans = row_spans(frames, 2, 0.6, np.zeros((0, 2)))
    assert spans.tolist() == [[0.0, 0.2], [0.2, 0.6]]
    # a gap: the frame before it lasts until the input was lost
    spans = row_spans(frames, 2, 0.6, np.array([[0.35, 0.4]]))
    assert spans[1].tolist() == [0.2, 0.6]
    frames["time"][4:] = [1.4, 1.5]
    spans = row_spans(frames, 2, 1.6, np.array([[0.35, 1.4]]))
    assert spans[1].tolist() == [0.2, 1.6] and spans[0].tolist() == [0.0, 0.2]


def test_scan_of_float16_rows_is_exact() -> None:
    rng = np.random.default_rng(2)
    rows = unit(rng.standard_normal((450_001, 64))).astype(np.float16)
    rows[5, :10] = np.float16(3e-6)  # subnormal halves are widened correctly too
    query = unit(rng.standard_normal(64))
    exact = rows.astype(np.float64) @ query.astype(np.float64)
    one = scan(rows, query)
    assert np.abs(one - exact).max() < 1e-6
    assert np.abs(scan(rows.astype(np.float32), query) - exact).max() < 1e-6
    # threads split on block boundaries: the same bits as one thread
    assert np.array_equal(scan(rows, query, threads=2), one)
    assert np.array_equal(scan(rows, query, threads=3), one)


def test_top_k_is_a_full_sort_cut_short() -> None:
    scores = np.random.default_rng(3).integers(0, 50, 5000).astype(np.float32)  # many ties
    for k in (1, 7, 100, 5000, 6000):
        full = np.lexsort((np.arange(len(scores)), -scores))[:k]
        assert np.array_equal(top_k(scores, k), full)


def brute_force(scores, spans, top, spread, gap):  # type: ignore[no-untyped-def]
    """The moment rule of moments.py, row by row over a full sort."""
    taken = [False] * len(scores)
    found = []
    for peak in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if taken[peak] or len(found) == top:
            continue
        first = last = peak
        j = peak + 1
        while j < len(scores) and not taken[j] and spans[j][0] - spans[last][1] <= gap:
            last = j if scores[j] >= scores[peak] - spread else last
            j += 1
        j = peak - 1
        while j >= 0 and not taken[j] and spans[first][0] - spans[j][1] <= gap:
            first = j if scores[j] >= scores[peak] - spread else first
            j -= 1
        for i in range(len(scores)):
            if spans[i][1] >= spans[first][0] - gap and spans[i][0] <= spans[last][1] + gap:
                taken[i] = True
        found.append((peak, first, last))
    return found


@pytest.mark.parametrize("top, spread, gap", [(1, 0.02, 2.0), (5, 0.05, 1.0), (20, 0.0, 0.0)])
def test_moments_match_brute_force(top: int, spread: float, gap: float) -> None:
    rng = np.random.default_rng(4)
    n = 3000
    scores = (np.sin(np.arange(n) / 40) * 0.1 + rng.normal(0, 0.03, n)).astype(np.float32)
    t = np.cumsum(rng.uniform(0.1, 1.5, n))
    spans = np.stack([t, t + 0.1], 1)
    assert file_moments(scores, t, spans, top, spread, gap) == brute_force(
        scores.tolist(), spans.tolist(), top, spread, gap
    )


def test_search_over_files_is_exact_and_bounded(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    files = [
        make_store(tmp_path / f"v{i}.npz", unit(rng.standard_normal((700, D)))) for i in range(4)
    ]
    videos, problems = collect(files)
    assert not problems and one_model(videos) == "fp-a"
    query = unit(rng.standard_normal(D))
    result = search(videos, query, top=12, min_gap=0.0, spread=0.0)
    # brute force: every row of every file in memory, in float64, one moment per row
    everything = [
        (float(s), v.name, float(v.open().times[i]))
        for v in videos
        for i, s in enumerate(np.asarray(v.open().embeddings, np.float64) @ query)
    ]
    everything.sort(key=lambda x: (-x[0], x[1], x[2]))
    assert [(m.video, m.best) for m in result.moments] == [e[1:] for e in everything[:12]]
    assert [m.score for m in result.moments] == pytest.approx([e[0] for e in everything[:12]])
    assert result.rows == 2800 and result.searched == 4


def test_moments_merge_adjacent_hits() -> None:
    scores = np.array([0.1, 0.5, 0.49, 0.1, 0.48, 0.1, 0.1, 0.1, 0.1, 0.47], np.float32)
    t = np.arange(10.0)
    spans = np.stack([t, t + 1], 1)
    found = file_moments(scores, t, spans, 5, 0.05, 1.0)
    # rows 1-4 are one moment (row 3 is a 1 s dip); row 9 is 5 s away: a moment of its own
    assert found[0] == (1, 1, 4) and found[1] == (9, 9, 9) and len(found) == 2
    m = Moment("v", None, 1.0, 5.0, 0.5, 1.0, "f")
    assert m.to_json()["end"] == 5.0


def test_several_models_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    a = make_store(tmp_path / "a.npz", unit(rng.standard_normal((5, D))), fingerprint="aaa")
    b = make_store(tmp_path / "b.npz", unit(rng.standard_normal((5, D))), fingerprint="bbb")
    videos, _ = collect([a, b])
    with pytest.raises(UsageError, match=r"2 different models.*aaa.*bbb"):
        one_model(videos)


def test_a_damaged_file_is_left_out_and_the_others_searched(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    good = make_store(tmp_path / "good.npz", unit(rng.standard_normal((20, D))))
    bad = make_store(tmp_path / "bad.npz", unit(rng.standard_normal((20, D))))
    bad.write_bytes(bad.read_bytes()[:-100])
    videos, problems = collect([good, bad])
    assert [v.path for v in videos] == [good]
    assert problems[0].path == str(bad) and "truncated" in problems[0].message
    result = search(videos, unit(rng.standard_normal(D)), problems=problems)
    assert result.searched == 1 and result.problems == problems


def test_mix_rows_do_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(8)
    a, b = unit(rng.standard_normal((300, 512))), unit(rng.standard_normal((300, 512)))
    w = rng.uniform(0, 1, 300)
    together = mix_rows(a, b, w)
    one_by_one = np.concatenate([mix_rows(a[i], b[i], w[i : i + 1]) for i in range(300)])
    assert np.array_equal(together, one_by_one)


def test_blended_similarities_equal_scoring_the_blended_embeddings() -> None:
    rng = np.random.default_rng(9)
    anchors, text = unit(rng.standard_normal((6, 512))), unit(rng.standard_normal((4, 512)))
    left = np.array([0, 0, 1, 2, 2, 3, 5])
    right = np.array([0, 1, 1, 3, 3, 4, 5])
    weight = np.array([0.0, 0.3, 0.0, 0.1, 0.9, 0.5, 0.0])
    blended = blended_similarities(anchors, text, left, right, weight)
    rows = mix_rows(anchors[left], anchors[right], weight)
    copies = left == right
    rows[copies] = anchors[left[copies]]
    assert np.allclose(blended, similarities(rows, text), atol=1e-6)
    # a frame's result does not depend on the batch it is scored in
    alone = [
        blended_similarities(anchors, text, left[i : i + 1], right[i : i + 1], weight[i : i + 1])
        for i in range(7)
    ]
    assert np.array_equal(np.concatenate(alone), blended)


def test_bulk_json_numbers_are_what_json_dumps_writes() -> None:
    rng = np.random.default_rng(10)
    values = [0.0, -0.0, 1.0, 1e-9, 1e-5, 9.99995e-5, 1e-4, 0.1234565, 3600.0333333]
    values += [float("nan"), float("inf")]
    values += (rng.random(20000) ** rng.integers(1, 30, 20000)).tolist()
    values += rng.uniform(0, 7200, 5000).tolist()
    assert numbers(values) == [json.dumps(round(v, 6)) for v in values]


def test_stored_video_names(tmp_path: Path) -> None:
    path = make_store(
        tmp_path / "x.npz", unit(np.ones((2, D))), input_path=str(tmp_path / "clip.mp4")
    )
    (video,), _ = collect([path])
    assert isinstance(video, StoredVideo) and video.rel == "clip.mp4"
    path = make_store(tmp_path / "cam0.embeddings.npz", unit(np.ones((2, D))))
    (video,), _ = collect([path])
    assert video.rel == "cam0" and video.video is None
    with pytest.raises(UsageError, match="no such file or folder"):
        collect([tmp_path / "nothing"])
    with pytest.raises(UsageError, match="manifest"):
        collect([tmp_path])
