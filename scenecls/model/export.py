"""Export a Hugging Face CLIP checkpoint to a scenecls bundle (the torch side).

This is the only module that imports torch and transformers, and it imports them
lazily: the runtime never needs them. The bundle is written to a temporary folder
beside the target and renamed into place, so a crash never leaves half a bundle.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import ExportError, ModelNotFoundError, NetworkError, UsageError
from ..interrupts import partial_file
from ..version import __version__
from .bundle import (
    BUNDLE_FORMAT,
    MANIFEST,
    PRECISIONS,
    TEXTUAL,
    TOKENIZER,
    VISUAL,
    Preprocessing,
    is_bundle_dir,
    sha256_file,
)

log = logging.getLogger("scenecls")

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
OPSET = 17
# Files of a hub CLIP repository that export needs (weights are picked separately).
_HUB_PATTERNS = [
    "config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
]
_PIL_BICUBIC = 3


def offline_hint(model: str) -> str:
    """The two ways out when a hub model is not cached and the hub is unreachable."""
    return (
        f"cannot download {model}: the Hugging Face hub is unreachable and the model is not "
        "in the cache; either pass --model LOCAL_DIR (a bundle or a Hugging Face model folder), "
        "or run 'scenecls export --out DIR' on a machine with network and copy DIR here"
    )


def fetch_checkpoint(model: str, revision: str | None = None) -> tuple[Path, str | None]:
    """Download (or find in the hub cache) the files of hub model ``model``.

    Returns the local snapshot folder and the resolved commit hash.
    Raises :class:`NetworkError` when the hub cannot be reached.
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as e:  # pragma: no cover - huggingface_hub is a dependency
        raise ExportError(f"huggingface_hub is missing ({e}): pip install scenecls[export]") from e
    try:
        local = Path(
            snapshot_download(
                model, revision=revision, allow_patterns=[*_HUB_PATTERNS, "*.safetensors"]
            )
        )
        if not any(local.glob("*.safetensors")):
            local = Path(
                snapshot_download(model, revision=revision, allow_patterns=["pytorch_model.bin"])
            )
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise ModelNotFoundError(
            f"{model!r} is neither a folder nor a model on the Hugging Face hub: "
            "check the name, or pass --model LOCAL_DIR"
        ) from e
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"{model!r} has no revision {revision!r}: check --revision") from e
    except Exception as e:  # connection errors come in many types across hub versions
        raise NetworkError(offline_hint(model)) from e
    commit = local.name if local.parent.name == "snapshots" else revision
    return local, commit


def image_processor_config(model_dir: Path) -> tuple[dict[str, Any], Path]:
    """The image processor's settings of a Hugging Face model folder, and the file they
    came from: ``preprocessor_config.json`` (what the hub's CLIP repositories have, and
    what transformers 4.x saves) or else the ``image_processor`` part of
    ``processor_config.json`` (what transformers 5 saves)."""
    legacy = model_dir / "preprocessor_config.json"
    if legacy.is_file():
        return _json_object(legacy), legacy
    unified = model_dir / "processor_config.json"
    if unified.is_file():
        part = _json_object(unified).get("image_processor")
        if isinstance(part, dict):
            return part, unified
        raise ExportError(f"{unified} has no image_processor settings: is it a CLIP model?")
    hint = (
        " (transformers 5 writes processor_config.json only when a CLIPProcessor is saved "
        "too, which needs Pillow: save the processor as well, or copy "
        "preprocessor_config.json from the original checkpoint)"
        if (model_dir / "config.json").is_file()
        else ": is it a CLIP model folder?"
    )
    raise ExportError(
        f"{model_dir} has neither preprocessor_config.json nor processor_config.json{hint}"
    )


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"{path} is not readable JSON: {e}") from e
    if not isinstance(data, dict):
        raise ExportError(f"{path} should hold a JSON object")
    return data


def _resample_is_bicubic(value: Any) -> bool:
    """PIL's integer code 3, or the name, in any case (``bicubic``, ``BICUBIC``)."""
    if isinstance(value, str):
        return value.strip().lower().rsplit(".", 1)[-1] == "bicubic"
    return isinstance(value, int) and value == _PIL_BICUBIC


def read_preprocessing(model_dir: Path) -> Preprocessing:
    """Translate a Hugging Face image processor config into :class:`Preprocessing`.

    Every form the hub has is read: sizes as plain integers (openai/clip-vit-base-patch32's
    ``"size": 224, "crop_size": 224``), as dicts (``{"shortest_edge": 224}``,
    ``{"height": 224, "width": 224}``, saved by transformers 4.x), and the settings nested
    under ``image_processor`` in transformers 5's ``processor_config.json``.
    """
    cfg, path = image_processor_config(model_dir)
    size = cfg.get("size", 224)
    shortest = size.get("shortest_edge") if isinstance(size, dict) else int(size)
    crop = cfg.get("crop_size", shortest)
    crop_hw = (
        (int(crop["height"]), int(crop["width"])) if isinstance(crop, dict) else (int(crop),) * 2
    )
    steps = ("do_center_crop", "do_resize", "do_rescale", "do_normalize")
    if shortest is None or not all(cfg.get(step, True) for step in steps):
        raise ExportError(
            f"{path}: only CLIP's shortest-edge resize, centre crop, rescale and normalisation "
            f"are supported (size {size!r}, "
            + ", ".join(f"{step} {cfg.get(step, True)}" for step in steps)
            + ")"
        )
    if not _resample_is_bicubic(cfg.get("resample", _PIL_BICUBIC)):
        raise ExportError(f"{path}: only bicubic resampling (3) is supported")
    return Preprocessing(
        shortest_edge=int(shortest),
        crop_size=crop_hw,  # type: ignore[arg-type]
        resample="bicubic",
        mean=tuple(cfg.get("image_mean", [0.48145466, 0.4578275, 0.40821073])),  # type: ignore[arg-type]
        std=tuple(cfg.get("image_std", [0.26862954, 0.26130258, 0.27577711])),  # type: ignore[arg-type]
        rescale_factor=float(cfg.get("rescale_factor", 1 / 255)),
    )


def export_bundle(
    model: str = DEFAULT_MODEL,
    out: str | os.PathLike[str] | None = None,
    *,
    precision: str = "fp32",
    revision: str | None = None,
    force: bool = False,
) -> Path:
    """Export ``model`` (hub id or local Hugging Face folder) to a bundle folder ``out``.

    ``precision`` is ``fp32`` (any device) or ``fp16`` (weights and activations in half
    precision: for CUDA). Returns the bundle path. Refuses to overwrite an existing
    folder unless ``force``.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(
            f"exporting {model} needs {' and '.join(missing)}, which are not installed: "
            "pip install 'scenecls[export]', or pass --model BUNDLE_DIR"
        )
    src = Path(model).expanduser()
    if src.is_dir():
        if is_bundle_dir(src):
            raise UsageError(f"{src} is already a scenecls bundle; nothing to export")
        if not (src / "config.json").is_file():
            raise ModelNotFoundError(
                f"{src} is not a Hugging Face model folder (no config.json): pass a CLIP "
                "checkpoint folder or a hub id"
            )
        model_dir, model_id, commit = src, str(src.resolve()), revision
    else:
        model_dir, commit = fetch_checkpoint(model, revision)
        model_id = model
    target = (
        Path(out) if out is not None else Path("models") / default_bundle_name(model_id, precision)
    )
    target = target.expanduser()
    occupied = target.is_file() or (target.is_dir() and any(target.iterdir()))
    if occupied and not force:
        raise UsageError(f"{target} already exists: choose another --out or pass --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    try:
        with partial_file(tmp):  # removed if the process is forced to exit mid-export
            _export_into(model_dir, tmp, model_id=model_id, revision=commit, precision=precision)
            _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s (%s) to %s", model_id, precision, target)
    return target


def default_bundle_name(model_id: str, precision: str) -> str:
    """Folder name for a bundle of ``model_id``: ``openai--clip-vit-base-patch32-fp32``."""
    stem = Path(model_id).name if os.path.isabs(model_id) else model_id.replace("/", "--")
    return f"{stem}-{precision}"


def _replace_dir(new: Path, target: Path) -> None:
    """Move finished folder ``new`` to ``target``, replacing an old one atomically enough:
    the old folder is renamed aside first and removed only after the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _export_into(
    model_dir: Path, out: Path, *, model_id: str, revision: str | None, precision: str
) -> None:
    try:
        import torch
        import transformers
        from transformers import CLIPModel, CLIPTokenizerFast
    except ImportError as e:
        raise ExportError(
            f"exporting needs torch and transformers ({e}): pip install 'scenecls[export]'"
        ) from e
    preprocessing = read_preprocessing(model_dir)
    try:
        clip = CLIPModel.from_pretrained(model_dir).float().eval()
        tokenizer = CLIPTokenizerFast.from_pretrained(model_dir)
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot load a CLIP model from {model_dir}: {e}") from e
    dtype = torch.float16 if precision == "fp16" else torch.float32
    if precision == "fp16":
        clip = clip.half()
    vcfg, tcfg = clip.config.vision_config, clip.config.text_config
    image_hw = preprocessing.crop_size
    if image_hw != (vcfg.image_size, vcfg.image_size):
        raise ExportError(
            f"crop size {image_hw} does not match the vision tower's image size {vcfg.image_size}"
        )
    context_length = int(tcfg.max_position_embeddings)
    embed_dim = int(clip.config.projection_dim)

    visual, textual = _towers(clip)
    pixels = torch.zeros((2, 3, *image_hw), dtype=dtype)
    # a padded batch, so the traced graph keeps its attention-mask path
    sample = tokenizer(["a photo", "a photo of a cat"], padding=True, return_tensors="pt")
    ids, mask = sample["input_ids"].long(), sample["attention_mask"].long()
    with torch.inference_mode():
        _onnx_export(
            visual,
            (pixels,),
            out / VISUAL,
            ["pixel_values"],
            ["image_embeds"],
            {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        )
        _onnx_export(
            textual,
            (ids, mask),
            out / TEXTUAL,
            ["input_ids", "attention_mask"],
            ["text_embeds"],
            {
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "text_embeds": {0: "batch"},
            },
        )
    tokenizer.backend_tokenizer.save(str(out / TOKENIZER))
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    tools = {
        "scenecls": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    try:
        import onnx

        tools["onnx"] = onnx.__version__
    except ImportError:
        pass
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "model_id": model_id,
        "revision": revision,
        "architecture": "clip",
        "embed_dim": embed_dim,
        "image_size": list(image_hw),
        "context_length": context_length,
        "pad_token_id": int(pad_id),
        "logit_scale": float(clip.logit_scale.detach().float().exp().item()),
        "precision": precision,
        "preprocessing": preprocessing.to_json(),
        "tensors": {
            "visual": {
                "inputs": ["pixel_values"],
                "outputs": ["image_embeds"],
                "input_layout": "NCHW RGB",
                "dtype": "float16" if precision == "fp16" else "float32",
            },
            "textual": {
                "inputs": ["input_ids", "attention_mask"],
                "outputs": ["text_embeds"],
                "dtype": "int64",
            },
        },
        "embeddings_normalized": False,
        "opset": OPSET,
        "files": {name: sha256_file(out / name) for name in (VISUAL, TEXTUAL, TOKENIZER)},
        "tools": tools,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp_manifest = out / (MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, out / MANIFEST)


def _onnx_export(module, args, path, input_names, output_names, dynamic_axes) -> None:  # type: ignore[no-untyped-def]
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as e:
            raise ExportError(f"ONNX export of {path.name} failed: {e}") from e


def _towers(clip):  # type: ignore[no-untyped-def]
    """The two exported graphs as torch modules (defined here: torch is imported lazily).

    visual: pixel_values (N,3,H,W) RGB normalised -> image_embeds (N,D), not normalised;
    textual: input_ids, attention_mask (N,L) int64 -> text_embeds (N,D), not normalised.
    """
    import torch

    class VisualTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision_model = clip.vision_model
            self.visual_projection = clip.visual_projection

        def forward(self, pixel_values):  # type: ignore[no-untyped-def]
            pooled = self.vision_model(pixel_values=pixel_values).pooler_output
            return self.visual_projection(pooled)

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text_model = clip.text_model
            self.text_projection = clip.text_projection

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            out = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
            return self.text_projection(out.pooler_output)

    return VisualTower(), TextTower()
