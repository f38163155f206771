"""The frame overlay: what it draws, where, at which size, and that it never breaks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from scenecls.types import Classification, Prediction, Scores, Segment
from scenecls.video.overlay import Overlay

LABELS = ("street", "parking lot", "highway", "park", "office", "store aisle")
SIZES = [(240, 320), (720, 1280), (2160, 3840), (1280, 720)]  # (h, w); the last is portrait


def make_pred(
    probs: list[float], labels: tuple[str, ...] = LABELS, smoothed: list[float] | None = None
) -> Prediction:
    """A Prediction built by hand from raw ``probs`` (smoothed: the same unless given)."""
    p = np.asarray(probs, np.float32)
    scores = Scores(tuple(labels), p.copy(), p.copy())
    top = tuple(scores.top(3))
    raw = Classification(top[0].label, top[0].probability, top, scores)
    sm = np.asarray(smoothed if smoothed is not None else probs, np.float32)
    best = int(np.argmax(sm))
    return Prediction(1.0, labels[best], float(sm[best]), raw, sm)


PRED = make_pred([0.05, 0.6, 0.3, 0.02, 0.02, 0.01])
SEGS = [Segment("street", 0.0, 20.0, 0.8), Segment("parking lot", 20.0, 60.0, 0.7)]


def flat(h: int, w: int, v: int = 100) -> np.ndarray:
    return np.full((h, w, 3), v, np.uint8)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """HxW bool: pixels that differ in any channel."""
    return np.any(a != b, axis=2)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) inclusive of the True pixels."""
    ys, xs = np.nonzero(mask)
    assert ys.size, "nothing was drawn"
    return int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())


def coloured(img: np.ndarray) -> np.ndarray:
    """HxW bool: pixels whose channels are not all equal (not grey, white or black)."""
    return (img.max(axis=2).astype(int) - img.min(axis=2)) > 0


def strip_band(h: int) -> slice:
    return slice(h - h // 8, h)


def test_draw_returns_annotated_copy_and_leaves_input_alone() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    before = img.copy()
    out = Overlay(LABELS).draw(img, PRED, SEGS, now=60.0)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out is not img and not np.shares_memory(out, img)
    np.testing.assert_array_equal(img, before)
    assert changed(out, img).any()


def test_draw_into_draws_in_place_like_draw() -> None:
    ov = Overlay(LABELS)
    img = flat(480, 640)
    expected = ov.draw(img, PRED, SEGS, now=60.0)
    returned = ov.draw_into(img, PRED, SEGS, now=60.0)
    assert returned is img
    np.testing.assert_array_equal(img, expected)


def test_bad_images_are_refused() -> None:
    ov = Overlay(LABELS)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        ov.draw(np.zeros((240, 320), np.uint8), PRED, SEGS, now=60.0)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        ov.draw(np.zeros((240, 320, 3), np.float32), PRED, SEGS, now=60.0)
    with pytest.raises(ValueError, match="contiguous"):
        ov.draw_into(flat(240, 640)[:, ::2], PRED, SEGS, now=60.0)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_panel_and_strip_are_drawn_and_the_middle_is_untouched(h: int, w: int) -> None:
    img = flat(h, w)
    diff = changed(Overlay(LABELS).draw(img, PRED, SEGS, now=60.0), img)
    assert diff[: h // 3, : w // 2].mean() > 0.05  # top-left panel
    assert diff[strip_band(h)].mean() > 0.05  # bottom strip
    assert not diff[h // 3 : h * 3 // 4].any()  # only the panel and strip regions change
    top, left, _, right = bbox(diff)
    assert top > 0 and left > 0 and right < w - 1  # margins are kept


def test_text_and_panel_grow_with_frame_size() -> None:
    ov = Overlay(LABELS)
    heights = {}
    for h, w in [(240, 320), (720, 1280), (2160, 3840)]:
        img = flat(h, w)
        out = ov.draw(img, PRED, [], now=60.0)
        top, _, bottom, _ = bbox(changed(out, img)[: h // 2])
        white = np.all(out[: h // 2] > 200, axis=2)  # the text
        t_top, _, t_bottom, _ = bbox(white)
        heights[h] = (bottom - top, t_bottom - t_top)
    assert heights[240][0] < heights[720][0] < heights[2160][0]
    assert heights[240][1] < heights[720][1] < heights[2160][1]
    assert heights[2160][0] > 2.5 * heights[720][0]  # ~proportional (3x), not just larger
    assert heights[240][0] < 240 * 0.45  # small frames keep most of the picture visible


def test_no_prediction_shows_a_smaller_waiting_panel() -> None:
    ov = Overlay(LABELS)
    img = flat(720, 1280)
    waiting = changed(ov.draw(img, None, [], now=0.0), img)[:360]
    full = changed(ov.draw(img, PRED, [], now=0.0), img)[:360]
    assert waiting.any()
    assert bbox(waiting)[2] < bbox(full)[2]  # no bars below the text
    assert waiting.sum() < full.sum()


def test_empty_segments_draw_an_empty_strip() -> None:
    ov = Overlay(LABELS)
    img = flat(720, 1280)
    empty = ov.draw(img, PRED, [], now=60.0)
    band = strip_band(720)
    assert changed(empty, img)[band].any()  # the dark strip background
    assert not coloured(empty[band]).any()  # but no segment blocks
    assert coloured(ov.draw(img, PRED, SEGS, now=60.0)[band]).mean() > 0.05


def test_segments_outside_the_window_are_not_drawn() -> None:
    ov = Overlay(LABELS, strip_seconds=60.0)
    img = flat(720, 1280)
    old = [Segment("park", 0.0, 30.0, 0.9)]
    assert not coloured(ov.draw(img, PRED, old, now=100.0)[strip_band(720)]).any()
    assert coloured(ov.draw(img, PRED, old, now=80.0)[strip_band(720)]).any()


def test_strip_blocks_are_proportional_to_duration() -> None:
    ov = Overlay(LABELS, strip_seconds=60.0)
    img = flat(720, 1280)
    segs = [Segment("street", 0.0, 45.0, 0.8), Segment("highway", 45.0, 60.0, 0.8)]
    band = ov.draw(img, PRED, segs, now=60.0)[strip_band(720)]
    cols = {s.label: np.any(np.all(band == ov.color(s.label), axis=2), axis=0).sum() for s in segs}
    assert cols["street"] == pytest.approx(3 * cols["highway"], rel=0.05)
    assert cols["street"] + cols["highway"] > 0.9 * 1280


def test_bars_follow_smoothed_probabilities_top_k() -> None:
    ov = Overlay(LABELS, top_k=3)
    img = flat(720, 1280)
    out = ov.draw(img, PRED, [], now=60.0)[:360]  # panel only, no strip

    def area(label: str) -> int:
        return int(np.all(out == ov.color(label), axis=2).sum())

    # highway (0.3) vs street (0.05): bar length proportional (text covers a little)
    assert area("highway") == pytest.approx(6 * area("street"), rel=0.25)
    assert area("park") == 0  # 4th best: beyond top_k

    def row(label: str) -> float:
        return float(np.nonzero(np.all(out == ov.color(label), axis=2))[0].mean())

    assert row("parking lot") < row("highway") < row("street")  # best first
    assert area("parking lot") > area("highway")
    one = Overlay(LABELS, top_k=1).draw(img, PRED, [], now=60.0)[:360]
    assert not np.all(one == ov.color("highway"), axis=2).any()


def test_bars_show_smoothed_not_raw_probabilities() -> None:
    ov = Overlay(LABELS, top_k=1)
    pred = make_pred([0.9, 0.02, 0.02, 0.02, 0.02, 0.02], smoothed=[0.1, 0, 0.8, 0, 0, 0.1])
    out = ov.draw(flat(720, 1280), pred, [], now=1.0)[:360]
    assert np.all(out == ov.color("highway"), axis=2).any()
    assert not np.all(out == ov.color("street"), axis=2).any()


@pytest.mark.parametrize(("h", "w"), [(1, 1), (8, 8), (40, 30), (30, 400), (400, 30)])
def test_tiny_frames_and_nan_probabilities_do_not_crash(h: int, w: int) -> None:
    pred = make_pred([0.5, 0.5, 0, 0, 0, 0], smoothed=[np.nan, 0.5, 0, 0, 0, 0])
    out = Overlay(LABELS).draw(flat(h, w), pred, SEGS, now=60.0)
    assert out.shape == (h, w, 3)


@pytest.mark.parametrize(("h", "w"), [(240, 320), (720, 1280), (1280, 720)])
def test_long_and_non_ascii_labels_are_cut_and_stay_inside(h: int, w: int) -> None:
    labels = ("x" * 200, "café ünïcödé 日本 → ok", "short")
    ov = Overlay(labels)
    pred = make_pred([0.5, 0.3, 0.2], labels)
    segs = [Segment(labels[1], 0.0, 30.0, 0.5), Segment(labels[0], 30.0, 60.0, 0.5)]
    img = flat(h, w)
    out = ov.draw(img, pred, segs, now=60.0)
    diff = changed(out, img)
    top, left, bottom, right = bbox(diff)
    assert top > 0 and left > 0 and bottom < h - 1 and right < w - 1
    panel_right = bbox(diff[: h // 3])[3]
    assert panel_right < w * 0.7  # the long label is cut, not spread across the frame


def test_non_ascii_is_drawn_as_question_marks() -> None:
    img = flat(360, 640)
    pred_u = make_pred([0.9, 0.1], ("café", "b"))
    pred_a = make_pred([0.9, 0.1], ("caf?", "b"))
    seg_u, seg_a = [Segment("café", 0.0, 60.0, 0.9)], [Segment("caf?", 0.0, 60.0, 0.9)]
    out_u = Overlay(("café", "b")).draw(img, pred_u, seg_u, now=60.0)
    out_a = Overlay(("caf?", "b")).draw(img, pred_a, seg_a, now=60.0)
    np.testing.assert_array_equal(out_u, out_a)


def test_a_label_keeps_its_colour_across_calls_and_instances() -> None:
    img = flat(720, 1280)
    seg = [Segment("park", 0.0, 60.0, 0.9)]

    def strip_colours(out: np.ndarray) -> set[tuple[int, ...]]:
        column = out[strip_band(720), 1200]  # right end of the block, past its text
        return {tuple(int(v) for v in p) for p in column if p.max() != p.min()}

    a = strip_colours(Overlay(LABELS).draw(img, PRED, seg, now=60.0))
    b = strip_colours(Overlay(LABELS).draw(img, None, seg, now=60.0))
    c = strip_colours(Overlay(LABELS, top_k=1).draw(img, make_pred([1, 0, 0, 0, 0, 0]), seg, 60.0))
    ov = Overlay(LABELS)
    assert a == b == c == {ov.color("park")}
    assert ov.color("park") == Overlay(LABELS).color("park")
    assert ov.color("not a label") == ov.color("not a label")  # stable fallback


def test_different_labels_get_different_colours_and_unknown_is_grey() -> None:
    ov = Overlay(LABELS)
    names = [*LABELS, "unknown"]
    colours = [ov.color(n) for n in names]
    assert len(set(colours)) == len(names)
    b, g, r = ov.color("unknown")
    assert b == g == r
    # and in the strip itself: one block per label, each its own colour
    img = flat(720, 1280)
    segs = [Segment(n, 60.0 * i / len(names), 60.0 * (i + 1) / len(names), 0.5)
            for i, n in enumerate(names)]  # fmt: skip
    band = ov.draw(img, None, segs, now=60.0)[strip_band(720)]
    found = [np.all(band == c, axis=2).any() for c in colours]
    assert all(found)


def test_draw_is_fast_on_1080p() -> None:
    ov = Overlay(LABELS)
    img = flat(1080, 1920)
    ov.draw(img, PRED, SEGS, now=60.0)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        ov.draw(img, PRED, SEGS, now=60.0)
        times.append(time.perf_counter() - t)
    assert sorted(times)[5] < 0.05  # a few ms typically; generous for slow CI machines


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        Overlay(LABELS, top_k=-1)
    with pytest.raises(ValueError):
        Overlay(LABELS, strip_seconds=0)
