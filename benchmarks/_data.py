"""Few-shot SST-2 and AG News prompts from ../shared/data for the backend benchmarks."""

import csv
from pathlib import Path

from iclkit import Pool, PromptBuilder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2_LABELS = {"0": "negative", "1": "positive"}
AGNEWS_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Technology"}


def sst2(split: str) -> Pool:
    """An SST-2 split (``LABEL TEXT`` per line)."""
    rows = [line.split(" ", 1) for line in (DATA / "sst2" / f"stsa.binary.{split}").open()]
    return Pool.from_records([{"text": text.strip(), "label": label} for label, text in rows])


def agnews() -> tuple[Pool, Pool]:
    """AG News: rows 1-6000 as the demonstration pool, 6001-7600 as the evaluation set."""
    with (DATA / "agnews" / "test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    records = [
        {"text": f"{r['Title']} {r['Description']}".replace("\\", " "), "label": r["Class Index"]}
        for r in rows
    ]
    return Pool.from_records(records[:6000]), Pool.from_records(records[6000:])


def sst2_prompts(n: int, k: int = 4, selector="balanced", pool: Pool | None = None):
    """Builder and few-shot prompts for the first ``n`` SST-2 dev examples."""
    builder = PromptBuilder(
        selector=selector,
        formatter={
            "name": "text",
            "template": "Review: {input}\nSentiment: {output}",
            "verbalizer": SST2_LABELS,
        },
        k=k,
    ).fit(pool or sst2("train"))
    return builder, builder.build_batch(list(sst2("dev"))[:n])


def agnews_prompts(n: int, k: int = 4):
    """Builder and few-shot prompts for the first ``n`` AG News evaluation rows."""
    pool, evaluation = agnews()
    builder = PromptBuilder(
        selector="balanced",
        formatter={
            "name": "text",
            "template": "Article: {input}\nTopic: {output}",
            "verbalizer": AGNEWS_LABELS,
        },
        k=k,
    ).fit(pool)
    return builder, builder.build_batch(list(evaluation)[:n])
