"""The command line, run in process: output formats, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenecls.cli import main
from scenecls.model.bundle import load_bundle

from .outputs import one_line_error


@pytest.fixture(scope="module")
def images(tmp_path_factory, real_frames) -> list[Path]:
    folder = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, frame in enumerate(real_frames[:3]):
        p = folder / f"frame{i}.png"
        cv2.imwrite(str(p), frame)
        paths.append(p)
    return paths


def test_classify_json_lines(images, tiny_bundle, capsys) -> None:
    code = main(
        [
            "classify",
            *map(str, images),
            "--model",
            str(tiny_bundle),
            "--labels",
            "room,park,warehouse",
            "--top-k",
            "2",
            "--json",
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and len(out) == 3
    for path, line in zip(images, out, strict=True):
        rec = json.loads(line)
        assert rec["image"] == str(path)
        preds = rec["predictions"]
        assert len(preds) == 2
        assert set(preds[0]) == {"label", "probability", "similarity"}
        assert preds[0]["probability"] >= preds[1]["probability"]
        assert preds[0]["label"] in {"room", "park", "warehouse"}


def test_classify_agrees_with_python_api(images, tiny_bundle, tiny_model, capsys) -> None:
    main(
        [
            "classify",
            str(images[0]),
            "--model",
            str(tiny_bundle),
            "--labels",
            "pizza",
            "--json",
            "--top-k",
            "5",
            "--precision",
            "fp32",
        ]
    )
    rec = json.loads(capsys.readouterr().out)
    api = tiny_model.classify([cv2.imread(str(images[0]))], "pizza", top_k=5)[0]
    assert [p["label"] for p in rec["predictions"]] == [c.label for c in api.top]
    assert np.allclose(
        [p["probability"] for p in rec["predictions"]], [c.probability for c in api.top], atol=1e-5
    )


def test_classify_text_output_and_folder_input(images, tiny_bundle, capsys) -> None:
    code = main(
        [
            "classify",
            str(images[0].parent),
            "--model",
            str(tiny_bundle),
            "--labels",
            "cups",
            "--top-k",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("frame") == 3 and "%" in out and ("plastic cup" in out or "ceramic cup" in out)


def test_unreadable_image_is_reported_others_still_classified(
    images, tiny_bundle, tmp_path, capsys
) -> None:
    bad = tmp_path / "fake.png"
    bad.write_text("not an image")
    code = main(["classify", str(images[0]), str(bad), "--model", str(tiny_bundle), "--json"])
    cap = capsys.readouterr()
    assert code == 1
    assert len(cap.out.splitlines()) == 1
    assert "cannot decode" in one_line_error(cap.err)


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["classify", "missing.jpg"], 2, "does not exist"),
        (["classify", "IMG", "--labels", "a,,b"], 2, "empty label"),
        (["classify", "IMG", "--top-k", "0"], 2, "--top-k"),
        (["classify", "IMG", "--min-confidence", "2"], 2, "--min-confidence"),
        (["classify", "IMG", "--model", "/no/such/model"], 1, "no such folder"),
        (["classify", "IMG", "--model", "openai/clip-vit-base-patch32"], 1, "--model LOCAL_DIR"),
        (["classify", "IMG", "--devic", "cpu"], 2, "unrecognized"),
        (
            ["export", "--model", "/no/such/dir", "--out", "OUT"],
            1,
            "cannot download|no such|neither",
        ),
    ],
)
def test_bad_input_one_line_and_exit_code(argv, code, message, images, tmp_path, capsys) -> None:
    argv = [
        str(images[0]) if a == "IMG" else str(tmp_path / "o") if a == "OUT" else a for a in argv
    ]
    assert main(argv) == code
    import re

    assert re.search(message, one_line_error(capsys.readouterr().err))


def test_export_command_writes_a_bundle(tiny_hf, tmp_path, capsys) -> None:
    out = tmp_path / "bundle"
    assert main(["export", "--model", str(tiny_hf), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert load_bundle(out).embed_dim == 32
    assert main(["export", "--model", str(tiny_hf), "--out", str(out)]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err


def test_export_default_goes_to_cache_where_classify_finds_it(tiny_hf, images, capsys) -> None:
    assert main(["export", "--model", str(tiny_hf)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert (path / "bundle.json").is_file()
    assert main(["classify", str(images[0]), "--model", str(tiny_hf), "--json"]) == 0


def test_debug_reraises(capsys) -> None:
    from scenecls.errors import UsageError

    with pytest.raises(UsageError):
        main(["classify", "missing.jpg", "--debug"])
