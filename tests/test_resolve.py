"""--model resolution: bundle folder, local HF folder (exported into the cache), hub id."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenecls.errors import ModelNotFoundError, NetworkError
from scenecls.model import export as export_mod
from scenecls.model.resolve import cached_bundle_path, resolve_model


def test_bundle_folder_is_used_as_is(tiny_bundle: Path) -> None:
    assert resolve_model(str(tiny_bundle)) == tiny_bundle


def test_hf_folder_is_exported_once_into_the_cache(
    tiny_hf: Path, _isolated_home: Path, monkeypatch
) -> None:
    path = resolve_model(str(tiny_hf))
    assert path.is_relative_to(_isolated_home)
    assert (path / "bundle.json").is_file()

    def no_export(*a, **k):
        raise AssertionError("exported twice")

    monkeypatch.setattr(export_mod, "export_bundle", no_export)
    assert resolve_model(str(tiny_hf)) == path


def test_cached_hub_id_needs_no_network(tiny_bundle: Path) -> None:
    import shutil

    target = cached_bundle_path("someone/clip-model")
    shutil.copytree(tiny_bundle, target)
    assert resolve_model("someone/clip-model") == target


def test_uncached_hub_id_offline_names_both_ways_out() -> None:
    with pytest.raises(NetworkError) as info:
        resolve_model("openai/clip-vit-base-patch32")
    msg = str(info.value)
    assert "--model LOCAL_DIR" in msg and "scenecls export" in msg and "\n" not in msg


@pytest.mark.parametrize("spec", ["./no/such/folder", "/definitely/missing", "bad id with spaces"])
def test_nonsense_model_is_refused(spec: str) -> None:
    with pytest.raises(ModelNotFoundError):
        resolve_model(spec)


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="neither a scenecls bundle"):
        resolve_model(str(tmp_path))
