"""The template plugin is found through the entry point, like a built-in, and works."""

import json

from click.testing import CliRunner
from iclkit_example_selector import LengthSelector

from iclkit import Pool, PromptBuilder
from iclkit.cli import main
from iclkit.registry import selectors


def test_discovered_through_entry_point():
    info = [p for p in selectors.plugins() if p.name == "length"]
    assert [(p.distribution, p.target) for p in info] == [
        ("iclkit-example-selector", "iclkit_example_selector.selector:LengthSelector")
    ]
    assert selectors.get("length") is LengthSelector


def test_picks_closest_lengths_and_skips_the_query():
    pool = Pool.from_records(
        [
            {"text": "one", "label": "a"},
            {"text": "one two three", "label": "b"},
            {"text": "one two three four five six", "label": "a"},
            {"text": "uno dos tres", "label": "b"},
        ]
    )
    prompt = PromptBuilder(selector="length", k=2).fit(pool).build("one two three")
    # "one two three" is pool[1] itself and must not be chosen; "uno dos tres" matches exactly.
    assert [d.index for d in prompt.demonstrations] == [3, 0]
    assert [d.score for d in prompt.demonstrations] == [0.0, -2.0]


def test_usable_from_the_cli(tmp_path):
    pool = tmp_path / "pool.jsonl"
    rows = [{"text": "w " * n, "label": str(n % 2)} for n in range(1, 9)]
    pool.write_text("\n".join(json.dumps(r) for r in rows))
    result = CliRunner().invoke(
        main,
        [
            "build",
            "--pool",
            str(pool),
            "--query",
            "a b c",
            "--selector",
            "length",
            "--k",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["demos"][0]["index"] == 2
