"""Property: no input produces a traceback from the CLI.

Hypothesis generates pool files (JSONL, CSV, TSV: JSON values of every kind, broken quoting,
byte order marks, bytes that are not UTF-8, deep nesting), experiment configs (a valid config
with keys set to values of every type, keys removed, unknown keys, and YAML text cut or
corrupted) and templates, and runs them through ``iclkit build`` and ``iclkit run --dry-run``.
Every run must exit 0, or exit non-zero with an ``Error:`` message and no exception escaping.
The suite is bounded (``max_examples``) to stay well under a minute and draws the same inputs
on every run (``HYPOTHESIS_EXPLORE=1`` draws new ones); the count of inputs tried is printed at
the end (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iclkit.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
TRIED: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()  # "kind: exit code" (how many inputs were refused)
SETTINGS = settings(
    max_examples=150,
    # The same inputs on every CI run; HYPOTHESIS_EXPLORE=1 draws new ones (for a local hunt).
    derandomize=not os.environ.get("HYPOTHESIS_EXPLORE"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# -- values of every kind -----------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "\x00", "../..", "/tmp", "{text}", "{0}", "{x.y}", "{x:>9999}", "é"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(["text", "label", "id", "review", "premise", "x", ""])


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def damaged_bytes(draw: st.DrawFn, text: str) -> bytes:
    """``text`` as UTF-8, maybe behind a BOM, maybe cut, maybe with bytes that are not UTF-8."""
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    action = draw(st.sampled_from(["keep", "cut", "latin1", "garbage"]))
    if action == "cut" and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif action == "latin1":
        position = draw(st.integers(0, len(data)))
        data = data[:position] + b"\xe9\xff" + data[position:]
    elif action == "garbage":
        data += draw(st.binary(max_size=40))
    return data


def _clean(result: Result, kind: str) -> None:
    """The CLI either worked or said ``Error: ...``; no exception escaped."""
    TRIED[kind] += 1
    OUTCOMES[f"{kind} exit {result.exit_code}"] += 1
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not escaped, f"{kind}: {type(result.exception).__name__}: {result.exception}"
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code:
        assert "Error: " in result.output, result.output
        assert "Traceback" not in result.output


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=True)


# -- pools --------------------------------------------------------------------------------------


@st.composite
def pool_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".jsonl", ".csv", ".tsv"]))
    rows = draw(
        st.lists(
            st.dictionaries(field_names, json_values, max_size=4)
            | st.fixed_dictionaries({"text": json_values, "label": json_values}),
            min_size=0,
            max_size=6,
        )
    )
    if suffix == ".jsonl":
        lines = [json.dumps(row) for row in rows]
        extra = draw(st.sampled_from(["", "[1, 2]", "not json", '{"text": ' + _deep(3000) + "}"]))
        text = "\n".join([*lines, extra]) + draw(st.sampled_from(["\n", ""]))
    else:
        sep = "," if suffix == ".csv" else "\t"
        header = sep.join(draw(st.lists(field_names, min_size=1, max_size=4)))
        body = [
            sep.join(json.dumps(v) if draw(st.booleans()) else str(v) for v in row.values())
            for row in rows
        ]
        text = "\n".join([header, *body, draw(st.sampled_from(["", '"open quote', "a" * 200_000]))])
    return suffix, draw(damaged_bytes(text))


@SETTINGS
@given(pool=pool_files(), k=st.integers(0, 3), fields=st.lists(field_names, max_size=2))
def test_bad_pool_files_never_give_a_traceback(pool: tuple[str, bytes], k: int, fields: list[str]):
    suffix, data = pool
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"pool{suffix}"
        path.write_bytes(data)
        args = ["build", "--pool", str(path), "--query", "a film", "--k", str(k)]
        for field in fields:
            args += ["--input-field", field]
        _clean(_invoke(args), "pool")


# -- templates ----------------------------------------------------------------------------------

template_text = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(
            [
                "{text}",
                "{output}",
                "{{",
                "}}",
                "{",
                "}",
                "{text!r}",
                "{text:>99}",
                "{text.x}",
                "{text[0]}",
                "{}",
                "{0}",
                "{ }",
                "{input}",
                "Review: ",
                "\\n",
                "{output:{text}}",
            ]
        ),
        max_size=6,
    ).map("".join),
)


@SETTINGS
@given(template=template_text, formatter=st.sampled_from(["text", "chat"]))
def test_bad_templates_never_give_a_traceback(template: str, formatter: str):
    args = [
        "build", "--pool", str(EXAMPLES / "sentiment_pool.jsonl"), "--query", "a film",
        "--k", "2", "--formatter", formatter, "--template", template,
    ]  # fmt: skip
    _clean(_invoke(args), "template")


# -- configs ------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "name": "prop",
    "data": {
        "pool": str(EXAMPLES / "sentiment_pool.jsonl"),
        "eval": str(EXAMPLES / "sentiment_eval.jsonl"),
        "labels": ["negative", "positive"],
        "eval_size": 4,
    },
    "pipeline": {
        "formatter": {"name": "text", "template": "Review: {text}\nSentiment: {output}"},
        "backend": "local",
    },
    "sweep": {"k": [0, 2], "selector": "random", "seed": [0, 1]},
    "run": {"batch_size": 4},
}
KEYS = {
    "": ["name", "data", "pipeline", "sweep", "run", "tune", "extra"],
    "data": ["pool", "eval", "dev", "format", "input_fields", "output_field", "id_field",
             "labels", "pool_slice", "eval_slice", "pool_size", "eval_size", "subsample_seed"],
    "pipeline": ["selector", "orderer", "formatter", "k", "seed", "instruction",
                 "token_budget", "backend", "classifier"],
    "sweep": ["selector", "k", "orderer", "seed", "backend", "classifier.calibration",
              "classifier.method", "formatter.template", "label_mode", "permutations"],
    "run": ["batch_size", "unrelated_labels"],
    "tune": ["metric", "dev_size", "dev_seed"],
}  # fmt: skip


@st.composite
def configs(draw: st.DrawFn) -> bytes:
    config = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(KEYS)))
        key = draw(st.sampled_from(KEYS[section]))
        target = config if not section else config.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        if draw(st.integers(0, 4)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    text = yaml.safe_dump(config, sort_keys=False)
    trick = draw(
        st.sampled_from(
            [
                "",
                "name: twice\n",
                "bomb: &a [x, x, x, x, x, x, x, x, x, x]\n"
                + "".join(f"b{i}: &{'a' * (i + 2)} [" + f"*{'a' * (i + 1)}, " * 9
                          + f"*{'a' * (i + 1)}]\n" for i in range(6)),
                "deep: " + _deep(5000) + "\n",
                "\x00\n",
                "sweep: *nowhere\n",
            ]
        )
    )  # fmt: skip
    return draw(damaged_bytes(text + trick))


@SETTINGS
@given(config=configs())
def test_bad_configs_never_give_a_traceback(config: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_bytes(config)
        _clean(_invoke(["run", str(path), "--dry-run", "--out", str(Path(folder) / "o")]), "config")


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    total = sum(TRIED.values())
    print(f"\nbad inputs tried through the CLI: {total} ({dict(sorted(TRIED.items()))})")
    print(f"outcomes: {dict(sorted(OUTCOMES.items()))}")
