"""The folder a fitted :class:`~iclkit.classifier.ICLClassifier` is saved in, and loading it back.

::

    model/
      iclkit-classifier.json   format version, iclkit version, the pipeline spec, the classes,
                               the pool's field mapping and a hash of its content
      pool.jsonl               the demonstration pool, one example a line
      selector/                what the selector needs to skip its fit (embedding selectors:
                               embeddings.npy, index.npz, embedder.json)

Only JSON, JSON lines, NumPy arrays (read with ``allow_pickle=False``) and FAISS's own index
format: no pickled code. Secret options are not fields of the spec, so they are never written;
:func:`load_classifier` takes them again (or the backend reads its environment). A save goes to
a staging folder first and replaces the target in one rename, so an interrupted save never
leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from iclkit._version import __version__
from iclkit.errors import ConfigError, DataError
from iclkit.example import Example
from iclkit.pool import Pool
from iclkit.spec import PipelineSpec

if TYPE_CHECKING:
    from iclkit.classifier import ICLClassifier

#: The version of the folder layout this iclkit writes; it reads this one and older ones.
FORMAT = 1
MANIFEST = "iclkit-classifier.json"
POOL = "pool.jsonl"
SELECTOR = "selector"


def _pool_lines(pool: Pool) -> str:
    return "".join(
        json.dumps(example.model_dump(mode="json"), ensure_ascii=False, sort_keys=True) + "\n"
        for example in pool
    )


def save_classifier(classifier: ICLClassifier, folder: Path) -> Path:
    """Write a fitted classifier into ``folder`` (created, or replaced if it holds a saved one).

    Returns the folder.

    Raises:
        ConfigError: if ``folder`` exists and is neither empty nor a saved classifier.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; give a folder to save the classifier into")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).exists():
        raise ConfigError(
            f"{folder} is not empty and holds no saved classifier; iclkit will not overwrite "
            "it. Fix: choose a new or empty folder"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        pool_text = _pool_lines(classifier.pool_)
        (staging / POOL).write_text(pool_text, encoding="utf-8")
        if classifier.spec_.k > 0:
            classifier.builder_.selector_.save(staging / SELECTOR)
        fields = classifier.pool_.field_map
        manifest = {
            "format": FORMAT,
            "iclkit_version": __version__,
            "spec": classifier.spec_.to_dict(),
            "classes": [_json_value(c) for c in classifier.classes_],
            "pool": {
                "input_fields": list(fields.input_fields),
                "output_field": fields.output_field,
                "id_field": fields.id_field,
                "size": len(classifier.pool_),
                "sha256": hashlib.sha256(pool_text.encode()).hexdigest(),
            },
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        (staging / MANIFEST).write_text(text, encoding="utf-8")
        _replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _replace(staging: Path, folder: Path) -> None:
    """Put ``staging`` where ``folder`` is, in one rename (the old folder is removed after)."""
    for path in staging.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    staging.chmod(0o755)
    if not folder.exists():
        os.replace(staging, folder)
        return
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def _json_value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a saved classifier, checked for a format this iclkit can read.

    Raises:
        DataError: if the folder holds no readable manifest.
        ConfigError: if it was written by a newer iclkit (a newer format).
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(
            f"no {MANIFEST} here: not a saved classifier",
            path=folder,
            fix="give the folder ICLClassifier.save() or `iclkit tune --out` wrote",
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"not valid JSON ({error})", path=path, fix="save it again") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise DataError("no format version in the manifest", path=path, fix="save it again")
    if manifest["format"] > FORMAT:
        raise ConfigError(
            f"{folder} was saved by iclkit {manifest.get('iclkit_version', '?')} in format "
            f"{manifest['format']}; this iclkit ({__version__}) reads formats up to {FORMAT}. "
            "Fix: upgrade iclkit (pip install -U iclkit)"
        )
    return manifest


def _read_pool(folder: Path, manifest: dict[str, Any]) -> Pool:
    path = folder / POOL
    try:
        text = path.read_text(encoding="utf-8")
        fields = manifest["pool"]
        if hashlib.sha256(text.encode()).hexdigest() != fields["sha256"]:
            raise DataError("the pool was changed after it was saved", path=path)
        examples = [Example.model_validate(json.loads(line)) for line in text.splitlines()]
        return Pool(
            examples,
            input_fields=fields["input_fields"],
            output_field=fields["output_field"],
            id_field=fields["id_field"],
            source=str(path),
        )
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise DataError(
            f"the saved pool cannot be read ({type(error).__name__}: {error})",
            path=path,
            fix="save the classifier again",
        ) from None


def load_classifier(folder: Path, secrets: dict[str, Any]) -> ICLClassifier:
    """Load a classifier from ``folder``; ``secrets`` are secret backend options.

    The selector is restored from its saved files: the pool is not embedded and no index is
    built.

    Raises:
        DataError: if the folder is not a saved classifier or is damaged.
        ConfigError: if it was saved by a newer iclkit or with another embedder.
    """
    from iclkit.classifier import ICLClassifier

    manifest = read_manifest(folder)
    raw = manifest.get("spec")
    if not isinstance(raw, dict):
        raise DataError("no pipeline spec in the manifest", path=folder / MANIFEST)
    if secrets:
        raw = {**raw, "backend": {**raw.get("backend", {}), **secrets}}
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        raise DataError(
            f"the saved pipeline spec is not valid here: {'.'.join(map(str, first['loc']))}: "
            f"{first['msg']} (a plugin it names may be missing)",
            path=folder / MANIFEST,
        ) from None
    pool = _read_pool(folder, manifest)
    classifier = ICLClassifier.from_spec(spec)
    classifier.spec_ = spec
    restore = folder / SELECTOR if spec.k > 0 else None
    return classifier._attach(pool, list(manifest.get("classes", [])), restore)
