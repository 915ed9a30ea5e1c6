"""Load an experiment's demonstration pool and evaluation set as its config describes them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from iclkit.errors import ConfigError, DataError
from iclkit.experiment.config import DataConfig, HFSource
from iclkit.pool import Pool, label_text_rows


@dataclass(frozen=True)
class ExperimentData:
    """The loaded pool and evaluation set, with a fingerprint of their content.

    Every example has an id: the data's own ``id`` field, else ``pool-N`` / ``eval-N`` with N
    its 0-based row in the file. ``fingerprint`` changes when any example, label or id does.
    """

    pool: Pool
    eval: Pool
    fingerprint: str


def _read_label_text(path: Path, config: DataConfig) -> Pool:
    """Read ``LABEL TEXT`` lines (see :func:`iclkit.pool.label_text_rows`)."""
    return Pool.from_records(
        [record for _, record in label_text_rows(path)],
        input_fields=config.input_fields,
        output_field=config.output_field,
        id_field=config.id_field,
        source=str(path),
    )


def _read_hf(source: HFSource, key: str, config: DataConfig) -> Pool:
    """Load one split with ``datasets.load_dataset`` (from the Hub, or local files offline)."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise ConfigError(
            f"data.{key}: Hugging Face datasets need the 'datasets' package. "
            "Fix: pip install 'iclkit[datasets]'"
        ) from None
    where = f"hf:{source.path}" + (f"/{source.name}" if source.name else "") + f"[{source.split}]"
    try:
        dataset = load_dataset(
            source.path, source.name, split=source.split, data_files=source.data_files
        )
    except Exception as error:  # datasets raises many types: not found, offline, bad split
        raise DataError(
            f"data.{key}: datasets.load_dataset could not load {where}: "
            f"{type(error).__name__}: {error}",
            fix="check the path, name and split (offline, only local files and the datasets "
            "cache can be read; set data_files for a local json/csv/parquet file)",
        ) from None
    pool = Pool.from_hf(
        dataset,
        input_fields=config.input_fields,
        output_field=config.output_field,
        id_field=config.id_field,
    )
    pool.source = where  # errors name the dataset and split, not "Dataset"
    return pool


def _read(source: Path | HFSource, key: str, config: DataConfig) -> Pool:
    if isinstance(source, HFSource):
        return _read_hf(source, key, config)
    path = source
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (from the config's data section)")
    if config.format == "label-text":
        return _read_label_text(path, config)
    if config.format != "auto":
        expected = {"jsonl": ".jsonl", "csv": ".csv", "tsv": ".tsv"}.get(config.format)
        if config.format == "hf" and not path.is_dir():
            raise DataError("format 'hf' needs a folder saved by datasets' save_to_disk", path=path)
        if expected is not None and path.suffix.lower() not in (expected, ".json", ".ndjson"):
            raise DataError(
                f"data.format is {config.format!r} but the file is {path.suffix!r}",
                path=path,
                fix="set data.format to 'auto' or to the file's type",
            )
    return Pool.load(
        path,
        input_fields=config.input_fields,
        output_field=config.output_field,
        id_field=config.id_field,
    )


def _select(
    pool: Pool,
    split: str,
    config: DataConfig,
    rows: tuple[int, int] | None,
    size: int | None,
) -> Pool:
    """Give every example an id, then apply the slice and the seeded subsample."""
    examples = [
        example if example.id is not None else example.model_copy(update={"id": f"{split}-{row}"})
        for row, example in enumerate(pool)
    ]
    if rows is not None:
        if rows[0] >= len(examples):
            raise DataError(
                f"data.{split}_slice starts at row {rows[0]} but the file has {len(examples)} rows",
                path=pool.source,
                fix=f"lower data.{split}_slice",
            )
        examples = examples[rows[0] : rows[1]]
    if size is not None and size < len(examples):
        chosen = np.random.default_rng(config.subsample_seed).choice(
            len(examples), size, replace=False
        )
        examples = [examples[i] for i in sorted(chosen)]
    return Pool(
        examples,
        input_fields=pool.input_fields,
        output_field=pool.output_field,
        source=pool.source,
    )


def _load_split(config: DataConfig, split: Literal["pool", "eval", "dev"]) -> Pool:
    """Read one split from its source, then slice and subsample it (the dev set as it is).

    Raises:
        ConfigError: if the split is not given in the config.
    """
    source = config.source(split)
    if source is None:
        raise ConfigError(f"data.{split} is missing. Fix: name it in the config's data section")
    rows = {"pool": config.pool_slice, "eval": config.eval_slice}.get(split)
    size = {"pool": config.pool_size, "eval": config.eval_size}.get(split)
    return _select(_read(source, split, config), split, config, rows, size)


def _check(pool: Pool, split: str, config: DataConfig) -> None:
    allowed = ", ".join(repr(label) for label in config.labels)
    for number, example in enumerate(pool, start=1):
        if example.output not in config.labels:
            raise DataError(
                f"data.{split}: example {number} (id {example.id!r}) has label "
                f"{example.output!r}, which is not in the label space ({allowed})",
                path=pool.source,
                field=config.output_field,
                fix="add the label to data.labels, or correct the data",
            )
        if split in ("eval", "dev") and not example.text.strip():
            raise DataError(
                f"data.{split}: example {number} (id {example.id!r}) has an empty input",
                path=pool.source,
                field=",".join(config.input_fields),
                fix="remove the example or fill in its input",
            )


def _fingerprint(*pools: Pool) -> str:
    digest = hashlib.sha256()
    for pool in pools:
        for example in pool:
            row = [example.id, example.input, example.output]
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\x00split\x00")
    return digest.hexdigest()


def load_pool(config: DataConfig) -> Pool:
    """Read, slice, subsample and check the demonstration pool alone.

    Raises:
        FileNotFoundError: if the file or folder does not exist.
        DataError: as :func:`load_data`.
    """
    pool = _load_split(config, "pool")
    _check(pool, "pool", config)
    return pool


def load_data(config: DataConfig) -> ExperimentData:
    """Read, slice, subsample and check the pool and the evaluation set.

    Raises:
        FileNotFoundError: if a file or folder does not exist.
        DataError: naming the file, example and field of a malformed record, a label outside
            the label space, an empty evaluation input, or an empty slice.
        ConfigError: if ``config.eval`` is not set.
    """
    return with_evaluation(config, load_pool(config))


def with_evaluation(config: DataConfig, pool: Pool) -> ExperimentData:
    """``config``'s evaluation set beside a given ``pool``.

    ``iclkit tune --evaluate`` passes the pool its saved winner was fitted on (the pool less
    the dev split), so that the held-out run measures exactly the saved pipeline.

    Raises:
        FileNotFoundError: if the evaluation file does not exist.
        DataError: as :func:`load_data`, for the evaluation set.
        ConfigError: if ``config.eval`` is not set.
    """
    evaluation = _load_split(config, "eval")
    _check(evaluation, "eval", config)
    return ExperimentData(pool=pool, eval=evaluation, fingerprint=_fingerprint(pool, evaluation))


def load_dev_data(config: DataConfig, dev_size: int, dev_seed: int) -> ExperimentData:
    """The pool and the dev set a pipeline is chosen on; ``config.eval`` is never read.

    The dev set is ``config.dev`` when given; otherwise ``dev_size`` pool examples drawn with
    ``dev_seed``, and the pool keeps the rest (a dev example is never a demonstration). The
    returned data's ``eval`` is the dev set.

    Raises:
        FileNotFoundError: if a file or folder does not exist.
        DataError: as :func:`load_data`, or if the pool is too small to carve the dev set from.
    """
    pool = load_pool(config)
    if config.source("dev") is not None:
        dev = _load_split(config, "dev")
    else:
        if dev_size >= len(pool):
            raise DataError(
                f"tune.dev_size is {dev_size} but the pool has only {len(pool)} examples",
                path=pool.source,
                fix="lower tune.dev_size, or give a dev set in data.dev",
            )
        chosen = set(np.random.default_rng(dev_seed).choice(len(pool), dev_size, replace=False))
        examples = list(pool)
        dev = Pool(
            [examples[i] for i in sorted(chosen)],
            input_fields=pool.input_fields,
            output_field=pool.output_field,
            source=pool.source,
        )
        pool = Pool(
            [example for i, example in enumerate(examples) if i not in chosen],
            input_fields=pool.input_fields,
            output_field=pool.output_field,
            source=pool.source,
        )
    _check(dev, "dev", config)
    return ExperimentData(pool=pool, eval=dev, fingerprint=_fingerprint(pool, dev))
