import json

import pytest
from click.testing import CliRunner

from iclkit import __version__
from iclkit.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_plugins_json_lists_builtins_and_the_example_plugin():
    result = run("plugins", "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert set(listing) == {
        "selectors",
        "orderers",
        "formatters",
        "backends",
        "methods",
        "calibrators",
    }
    by_name = {p["name"]: p for p in listing["selectors"]}
    assert {"random", "first", "balanced", "length"} <= set(by_name)
    assert by_name["random"]["distribution"] == "iclkit"
    assert by_name["length"]["distribution"] == "iclkit-example-selector"
    assert {p["name"] for p in listing["orderers"]} >= {"as-selected", "random", "reverse"}
    assert {p["name"] for p in listing["formatters"]} >= {"text", "chat"}


def test_plugins_table():
    result = run("plugins")
    assert result.exit_code == 0
    assert "selectors:" in result.output and "iclkit-example-selector" in result.output


def test_build_prints_a_reproducible_few_shot_prompt(pool_file):
    args = ["build", "--pool", str(pool_file), "--query", "a fine film", "--k", "3", "--seed", "4"]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert first.output.count("Input: ") == 4 and first.output.count("Output:") == 4
    assert first.output.rstrip().endswith("Input: a fine film\nOutput:")
    assert run(*args).output == first.output
    outputs = {run(*args[:-1], str(seed)).output for seed in range(5)}
    assert len(outputs) > 1


def test_build_json_shape(pool_file):
    result = run(
        "build",
        "--pool",
        str(pool_file),
        "--query",
        "a fine film",
        "--k",
        "2",
        "--selector",
        "balanced",
        "--template",
        "Review: {text}\\nSentiment: {output}",
        "--verbalize",
        "pos=positive",
        "--verbalize",
        "neg=negative",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload) == {"prompt", "messages", "demos", "dropped"}
    assert payload["prompt"].endswith("Review: a fine film\nSentiment:")
    assert payload["messages"] == [{"role": "user", "content": payload["prompt"]}]
    assert len(payload["demos"]) == 2
    assert {d["output"] for d in payload["demos"]} == {"pos", "neg"}
    for demo in payload["demos"]:
        assert set(demo) == {"index", "id", "score", "input", "output"}
        assert f"Review: {demo['input']['text']}" in payload["prompt"]
    assert "Sentiment: positive" in payload["prompt"]


def test_build_chat_formatter_and_field_mapping(tmp_path):
    pool = tmp_path / "nli.jsonl"
    pool.write_text(
        "\n".join(
            json.dumps(
                {"premise": f"p{i}", "hypothesis": f"h{i}", "gold": "yes" if i % 2 else "no"}
            )
            for i in range(4)
        )
    )
    result = run(
        "build",
        "--pool",
        str(pool),
        "--input-field",
        "premise",
        "--input-field",
        "hypothesis",
        "--output-field",
        "gold",
        "--formatter",
        "chat",
        "--template",
        "{premise} / {hypothesis}",
        "--query",
        '{"premise": "P", "hypothesis": "H"}',
        "--selector",
        "first",
        "--k",
        "2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    messages = json.loads(result.output)["messages"]
    assert messages[0] == {"role": "user", "content": "p0 / h0"}
    assert messages[-1] == {"role": "user", "content": "P / H"}
    bad = run(
        "build",
        "--pool",
        str(pool),
        "--input-field",
        "premise",
        "--input-field",
        "hypothesis",
        "--output-field",
        "gold",
        "--query",
        "plain",
    )
    assert bad.exit_code == 2 and "JSON object of those fields" in bad.output


def test_selector_options(pool_file):
    fixed = [
        json.loads(
            run(
                "build", "--pool", str(pool_file), "--query", q, "-o", "per_query=false", "--json"
            ).output
        )["demos"]
        for q in ("one query", "another query")
    ]
    assert fixed[0] == fixed[1]
    bad = run("build", "--pool", str(pool_file), "--query", "q", "-o", "lam=1")
    assert bad.exit_code == 1 and "does not take option(s) lam" in bad.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "50"], "k=50 is larger than the pool (12 examples)"),
        (["--k", "-2"], "k must be a non-negative integer"),
        (["--selector", "psychic"], "unknown selector plugin 'psychic'; available: balanced"),
        (["--template", "{review} {output}"], "template field {review} is not in the example"),
        (["--output-field", "stars"], "missing field 'stars'"),
        (["--token-budget", "-1"], "token_budget must be a non-negative integer"),
    ],
)
def test_bad_input_gives_one_clear_error(pool_file, extra, message):
    result = run("build", "--pool", str(pool_file), "--query", "q", *extra)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.count("Error:") == 1


def test_bad_pool_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "has no examples" in run("build", "--pool", str(empty), "--query", "q").output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": "b"}\nnot json\n')
    result = run("build", "--pool", str(broken), "--query", "q")
    assert result.exit_code == 1 and f"{broken}:2: not valid JSON" in result.output
    missing = run("build", "--pool", str(tmp_path / "nope.jsonl"), "--query", "q")
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_help_teaches_and_version():
    assert "iclkit build --help" in run("--help").output
    build_help = run("build", "--help").output
    assert "Examples:" in build_help and "--selector" in build_help and "--seed" in build_help
    assert "iclkit.selectors" in run("plugins", "--help").output
    assert __version__ in run("--version").output


def test_build_reports_dropped_demonstrations_and_counts_model_tokens(pool_file):
    args = ["build", "--pool", str(pool_file), "--query", "a moving film", "--k", "4"]
    words = CliRunner().invoke(main, [*args, "--token-budget", "20"])
    assert words.exit_code == 0, words.output
    assert "to fit 20 words: pool index" in words.stderr
    full = CliRunner().invoke(main, args)
    assert full.output.count("Output:") == 5 and "dropped" not in full.stderr
    tokens = CliRunner().invoke(
        main, [*args, "--token-budget", "40", "--tokenizer", "gemma-3-270m"]
    )
    assert tokens.exit_code == 0, tokens.output
    assert "to fit 40 gemma-3-270m tokens" in tokens.stderr
