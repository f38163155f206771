"""The archive's pure parts: input expansion, the manifest, options hashing, Ray plans."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scenecls.archive.inputs import expand_inputs
from scenecls.archive.manifest import Manifest, is_archive_dir, read_manifest
from scenecls.archive.options import ArchiveOptions, ModelIdentity, output_name, parse_outputs
from scenecls.archive.ray_engine import ActorPlan, plan_actors
from scenecls.errors import UsageError
from scenecls.model.labels import resolve_labels
from scenecls.video.smoothing import SmoothingConfig


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for rel in (
        "a.mp4",
        "cams/north/b.MOV",
        "cams/north/c.gif",
        "cams/south/d.mkv",
        "cams/south/notes.txt",
        "cams/.hidden.mp4",
        ".trash/e.mp4",
        "old-ann/x.mp4.annotated.mp4",
    ):
        _touch(root / rel)
    _touch(root / "old-ann" / "manifest.jsonl", b'{"input": "/x", "options_hash": "1"}\n')
    return root


def _rels(videos) -> list[str]:  # type: ignore[no-untyped-def]
    return [v.rel for v in videos]


def test_folders_are_searched_recursively_for_videos_only(tree: Path, tmp_path: Path) -> None:
    videos = expand_inputs([str(tree)], tmp_path / "out")
    # hidden files and folders, non-videos and another archive's outputs are left out;
    # extensions match in any case; sorted by mirrored path
    assert _rels(videos) == ["a.mp4", "cams/north/b.MOV", "cams/north/c.gif", "cams/south/d.mkv"]
    assert all(v.path.is_absolute() for v in videos)


def test_files_patterns_and_duplicates(tree: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tree)
    videos = expand_inputs(
        ["cams/**/*.gif", "cams/north", "cams/south/d.mkv", str(tree / "cams/north/c.gif")],
        tmp_path / "out",
    )
    # the common root of cams/ (pattern), cams/north and cams/south: paths mirror from cams/
    assert _rels(videos) == ["north/b.MOV", "north/c.gif", "south/d.mkv"]
    # a file named explicitly is taken whatever its extension
    explicit = expand_inputs(["cams/south/notes.txt"], tmp_path / "out")
    assert _rels(explicit) == ["notes.txt"]


def test_the_output_folder_is_never_an_input(tree: Path) -> None:
    out = tree / "cams" / "south"
    assert _rels(expand_inputs([str(tree)], out)) == [
        "a.mp4",
        "cams/north/b.MOV",
        "cams/north/c.gif",
    ]
    with pytest.raises(UsageError, match="is the output folder or inside it"):
        expand_inputs([str(tree / "cams")], tree / "cams")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.mp4", "does not exist"),
        ("*.webm", "matches nothing"),
        ("cams/south/*.txt", "matches no video"),
        ("cams/south/notes.txt/..", "does not exist"),
    ],
)
def test_bad_inputs(spec: str, message: str, tree: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tree)
    with pytest.raises(UsageError, match=message):
        expand_inputs([spec], tmp_path / "out")


def test_a_folder_without_videos_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(UsageError, match="no videos found"):
        expand_inputs([str(tmp_path / "empty")], tmp_path / "out")


def _entry(name: str, status: str = "done", **extra: object) -> dict:  # type: ignore[type-arg]
    return {"input": f"/v/{name}", "file": name, "status": status, "options_hash": "h", **extra}


def test_manifest_appends_durably_and_the_newest_entry_wins(tmp_path: Path) -> None:
    with Manifest(tmp_path) as m:
        m.append(_entry("a.mp4"))
        m.append(_entry("b.mp4", "failed"))
        m.append(_entry("b.mp4"))
        assert m.entries["/v/b.mp4"]["status"] == "done"
    # closed: one line per input, in the order the videos finished
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(x)["file"] for x in lines] == ["a.mp4", "b.mp4"]
    assert is_archive_dir(tmp_path)


def test_manifest_ignores_a_torn_last_line_and_cuts_it_before_appending(
    tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "manifest.jsonl"
    whole = json.dumps(_entry("a.mp4")) + "\n"
    path.write_text(whole + json.dumps(_entry("b.mp4"))[:25])  # a crash mid-line
    assert list(read_manifest(path)) == ["/v/a.mp4"]
    assert "not a manifest entry" not in caplog.text  # a torn tail is expected, not warned
    with Manifest(tmp_path) as m:
        assert list(m.entries) == ["/v/a.mp4"]
        m.append(_entry("c.mp4"))
    assert [json.loads(x)["file"] for x in path.read_text().splitlines()] == ["a.mp4", "c.mp4"]


def test_manifest_skips_garbage_in_the_middle_with_a_warning(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "manifest.jsonl"
    path.write_text(
        json.dumps(_entry("a.mp4")) + "\n[1, 2]\nnot json\n" + json.dumps(_entry("b.mp4")) + "\n"
    )
    assert list(read_manifest(path)) == ["/v/a.mp4", "/v/b.mp4"]
    assert caplog.text.count("is not a manifest entry") == 2


def _options(**kw: object) -> ArchiveOptions:
    base: dict = {  # type: ignore[type-arg]
        "out_dir": Path("/out"),
        "model": "m",
        "labels": resolve_labels("room,park"),
        "smoothing": SmoothingConfig(),
    }
    base.update(kw)
    return ArchiveOptions(**base)


IDENT = ModelIdentity("m", "f00d", "fp32", "cpu", "onnxruntime")


def test_the_options_hash_covers_what_changes_outputs() -> None:
    ref = _options().options_hash(IDENT)
    assert _options(out_dir=Path("/elsewhere"), model="other/path").options_hash(IDENT) == ref
    changed = [
        _options(labels=resolve_labels("room,park,street")),
        _options(labels=resolve_labels("room,park", "{}")),
        _options(fps=2.0),
        _options(batch=8),
        _options(smoothing=SmoothingConfig(min_dwell=1.0)),
        _options(smoothing=SmoothingConfig(min_confidence=0.5)),
        _options(outputs=("jsonl",)),
    ]
    assert all(o.options_hash(IDENT) != ref for o in changed)
    for other in ("bf16", "int8"):  # the precision the worker really ran at
        ident = ModelIdentity("m", "f00d", other, "cpu", "openvino")
        assert _options().options_hash(ident) != ref
    assert _options().options_hash(ModelIdentity("m", "beef", "fp32", "cpu", "x")) != ref
    assert _options().options_hash(ModelIdentity("m", "f00d", "fp32", "cuda", "x")) != ref
    # the overlay's top-k matters only when the annotated video is written
    top5 = SmoothingConfig(top_k=5)
    assert _options(smoothing=top5).options_hash(IDENT) == ref
    video = ("jsonl", "video")
    assert _options(outputs=video, smoothing=top5).options_hash(IDENT) != _options(
        outputs=video
    ).options_hash(IDENT)


def test_outputs_option() -> None:
    assert parse_outputs("srt, jsonl") == ("jsonl", "srt")
    assert parse_outputs("all") == (
        "jsonl", "segments", "csv", "srt", "vtt", "video", "embeddings"
    )  # fmt: skip
    assert output_name("clip.mp4", "embeddings") == "clip.mp4.embeddings"  # a store folder
    with pytest.raises(UsageError, match="choose from"):
        parse_outputs("jsonl,mp3")
    assert output_name("clip.mp4", "segments") == "clip.mp4.segments.json"
    assert output_name("clip.gif", "video") == "clip.gif.annotated.mp4"


@pytest.mark.parametrize(
    "nodes, workers, plan",
    [
        ([{"CPU": 2.0}], None, ActorPlan(2, 1.0, 0.0, 1)),
        ([{"CPU": 2.0}], 1, ActorPlan(1, 2.0, 0.0, 2)),
        ([{"CPU": 2.0}], 4, ActorPlan(4, 0.5, 0.0, 1)),
        ([{"CPU": 16.0}, {"CPU": 16.0}], 2, ActorPlan(2, 16.0, 0.0, 16)),
        ([{"CPU": 16.0}, {"CPU": 16.0}], 1, ActorPlan(1, 16.0, 0.0, 16)),  # one node's worth
        ([{"CPU": 16.0, "GPU": 2.0}], None, ActorPlan(8, 2.0, 0.25, 2)),
        ([{"CPU": 8.0, "GPU": 1.0}], 3, ActorPlan(3, 2.0, 0.33, 2)),
        ([{"CPU": 4.0, "GPU": 4.0}], None, ActorPlan(4, 1.0, 1.0, 1)),
    ],
)
def test_ray_actor_plans(nodes, workers, plan) -> None:  # type: ignore[no-untyped-def]
    assert plan_actors(nodes, workers) == plan


def test_engine_choice_errors(tmp_path: Path) -> None:
    from scenecls.archive import annotate_archive

    opts = _options(out_dir=tmp_path / "out")
    with pytest.raises(UsageError, match="--engine must be one of"):
        annotate_archive([str(tmp_path)], opts, engine="spark")
    with pytest.raises(UsageError, match="--ray-address needs --engine ray"):
        annotate_archive([str(tmp_path)], opts, ray_address="auto")
    with pytest.raises(UsageError, match="--workers must be at least 1"):
        annotate_archive([str(tmp_path)], opts, workers=0)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    import fcntl

    from scenecls.archive import annotate_archive
    from scenecls.archive.driver import LOCK_NAME

    out = tmp_path / "out"
    out.mkdir()
    video = _touch(tmp_path / "in" / "v.mp4")
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(UsageError, match="another scenecls annotate is writing"):
            annotate_archive([str(video)], _options(out_dir=out))
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("cpus", "videos", "cuda", "expected"),
    [(2, 6, False, 1), (1, 6, False, 1), (16, 20, False, 8), (16, 3, False, 3), (16, 20, True, 4)],
)
def test_default_local_workers_take_two_cores_each(
    monkeypatch, cpus, videos, cuda, expected
) -> None:  # type: ignore[no-untyped-def]
    from scenecls.archive import local

    monkeypatch.setattr(local, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(local, "_available_memory", lambda: None)
    assert local.default_workers(None, videos, cuda) == expected
