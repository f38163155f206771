"""Export reads the image processor settings in every form the hub has: integer sizes
(openai/clip-vit-base-patch32 itself), dict sizes (transformers 4.x) and the
``image_processor`` part of transformers 5's ``processor_config.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scenecls.errors import ExportError
from scenecls.model.bundle import load_bundle
from scenecls.model.export import export_bundle, read_preprocessing

# the settings of openai/clip-vit-base-patch32, in the three forms
LEGACY = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}
DICT_FORM = {
    **LEGACY,
    "crop_size": {"height": 224, "width": 224},
    "size": {"shortest_edge": 224},
    "rescale_factor": 0.00392156862745098,
    "image_processor_type": "CLIPImageProcessor",
}
UNIFIED = {
    "image_processor": {**DICT_FORM, "image_processor_type": "CLIPImageProcessorFast"},
    "processor_class": "CLIPProcessor",
}


def _folder(tmp_path: Path, name: str, content: dict) -> Path:  # type: ignore[type-arg]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(json.dumps(content))
    return tmp_path


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("preprocessor_config.json", LEGACY),
        ("preprocessor_config.json", DICT_FORM),
        ("processor_config.json", UNIFIED),
    ],
    ids=["legacy-integers", "transformers-4-dicts", "transformers-5-unified"],
)
def test_every_form_gives_the_same_preprocessing(tmp_path: Path, name: str, content) -> None:  # type: ignore[no-untyped-def]
    prep = read_preprocessing(_folder(tmp_path, name, content))
    assert prep.shortest_edge == 224
    assert tuple(prep.crop_size) == (224, 224)
    assert prep.resample == "bicubic"
    assert tuple(prep.mean) == tuple(LEGACY["image_mean"])
    assert tuple(prep.std) == tuple(LEGACY["image_std"])
    assert prep.rescale_factor == pytest.approx(1 / 255)


def test_preprocessor_config_wins_over_processor_config(tmp_path: Path) -> None:
    other = {"image_processor": {**DICT_FORM, "size": {"shortest_edge": 336}}}
    folder = _folder(
        _folder(tmp_path, "processor_config.json", other), "preprocessor_config.json", LEGACY
    )
    assert read_preprocessing(folder).shortest_edge == 224


def test_resample_by_name_and_refusals(tmp_path: Path) -> None:
    named = {**DICT_FORM, "resample": "BICUBIC"}
    assert read_preprocessing(_folder(tmp_path / "a", "preprocessor_config.json", named))
    bilinear = {**LEGACY, "resample": 2}
    with pytest.raises(ExportError, match="only bicubic"):
        read_preprocessing(_folder(tmp_path / "b", "preprocessor_config.json", bilinear))
    with pytest.raises(ExportError, match="no image_processor settings"):
        read_preprocessing(_folder(tmp_path / "c", "processor_config.json", {"x": 1}))
    with pytest.raises(ExportError, match=r"neither preprocessor_config\.json nor"):
        read_preprocessing(tmp_path)  # a folder with only sub-folders
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text("{}")  # a model saved without its processor
    with pytest.raises(ExportError, match="save the processor as well"):
        read_preprocessing(tmp_path / "e")
    unnormalised = {**LEGACY, "do_normalize": False}
    with pytest.raises(ExportError, match="only CLIP's shortest-edge resize"):
        read_preprocessing(_folder(tmp_path / "f", "preprocessor_config.json", unnormalised))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ExportError, match="not readable JSON"):
        read_preprocessing(tmp_path / "d")


def test_a_checkpoint_saved_by_transformers_5_exports(
    tiny_hf: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    """A model folder whose image settings live only in processor_config.json (as
    transformers 5 saves it) exports to the same bundle as the hub layout."""
    folder = tmp_path / "v5"
    shutil.copytree(tiny_hf, folder)
    legacy = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").unlink()
    (folder / "processor_config.json").write_text(
        json.dumps({"image_processor": legacy, "processor_class": "CLIPProcessor"})
    )
    out = export_bundle(folder, tmp_path / "bundle")
    ours, reference = load_bundle(out), load_bundle(tiny_bundle)
    assert ours.manifest["preprocessing"] == reference.manifest["preprocessing"]
    import onnxruntime as ort

    pixels = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    a = ort.InferenceSession(str(ours.visual_path), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(reference.visual_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        a.run(None, {"pixel_values": pixels})[0],
        b.run(None, {"pixel_values": pixels})[0],
        atol=1e-5,
    )
