"""The ``iclkit`` command line."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from iclkit._version import __version__
from iclkit.builder import PromptBuilder, whitespace_length
from iclkit.cli_errors import friendly_errors
from iclkit.pool import Pool
from iclkit.registry import GROUPS, Registry
from iclkit.yaml_io import load_yaml_text


def _parse_assignments(values: tuple[str, ...], option: str) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` pairs; values are read as YAML scalars (``0.5``, ``true``, ``foo``)."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        parsed[key.strip()] = load_yaml_text(raw, f"{option} {key.strip()}") if raw else ""
    return parsed


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="iclkit")
def main() -> None:
    """iclkit: build and study in-context learning prompts.

    \b
    Start with:
      iclkit plugins                 what selectors, orderers, formatters, backends exist
      iclkit build --help            build a few-shot prompt from a pool file

    Every command takes -h/--help.
    """


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@friendly_errors
def plugins(as_json: bool) -> None:
    """List every registered plugin, per group, with the package it comes from.

    Built-ins and third-party plugins are found the same way, through the entry-point groups
    iclkit.selectors, iclkit.orderers, iclkit.formatters and iclkit.backends. Listing imports
    no plugin.

    \b
    Example:
      iclkit plugins --json | python -m json.tool
    """
    listing = {group: registry.plugins() for group, registry in GROUPS.items()}
    if as_json:
        payload = {
            group: [
                {
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "target": info.target,
                }
                for info in infos
            ]
            for group, infos in listing.items()
        }
        click.echo(json.dumps(payload, indent=2))
        return
    for group, infos in listing.items():
        click.secho(f"{group}:", bold=True)
        if not infos:
            click.echo("  (none installed)")
        for info in infos:
            source = f"{info.distribution} {info.version}" if info.distribution else "in-process"
            click.echo(f"  {info.name:<22} {source:<32} {info.target}")


def _options_for(registry: Registry[Any], name: str, candidates: dict[str, Any]) -> dict[str, Any]:
    """Keep the candidate options that the named plugin's constructor accepts."""
    parameters = inspect.signature(registry.get(name)).parameters
    return {key: value for key, value in candidates.items() if key in parameters}


@main.command()
@click.option(
    "--pool",
    "pool_path",
    required=True,
    type=click.Path(dir_okay=True, path_type=Path),
    help="Demonstration pool: .jsonl, .csv, .tsv, or a folder saved by datasets.",
)
@click.option(
    "--query", "queries", required=True, multiple=True, help="Query text (repeat for several)."
)
@click.option("--selector", default="random", show_default=True, help="Selector plugin name.")
@click.option("--k", default=4, show_default=True, type=int, help="Number of demonstrations.")
@click.option("--orderer", default="as-selected", show_default=True, help="Orderer plugin name.")
@click.option("--formatter", default="text", show_default=True, help="Formatter plugin name.")
@click.option(
    "--template",
    default=None,
    help="Template with {field} names and {output} for the label, e.g. "
    "'Review: {text}\\nSentiment: {output}'. (chat formatter: the user-turn template.)",
)
@click.option("--instruction", default=None, help="Task instruction placed before the demos.")
@click.option(
    "--verbalize",
    multiple=True,
    metavar="LABEL=WORD",
    help="Map a label to the word shown, e.g. --verbalize 0=negative (repeatable).",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed for random choices/orders."
)
@click.option(
    "--input-field",
    "input_fields",
    multiple=True,
    default=("text",),
    show_default=True,
    help="Pool field(s) forming the input (repeatable).",
)
@click.option(
    "--output-field", default="label", show_default=True, help="Pool field holding the label."
)
@click.option(
    "--option",
    "-o",
    "selector_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra selector option, e.g. -o per_query=false (repeatable).",
)
@click.option(
    "--token-budget",
    type=int,
    default=None,
    help="Drop the least relevant demos until the prompt fits N tokens: whitespace-separated "
    "words, or the tokens of --tokenizer. Dropped demos are listed on stderr.",
)
@click.option(
    "--tokenizer",
    default=None,
    metavar="FOLDER|gemma-3-270m",
    help="Count --token-budget in this local Hugging Face tokenizer's tokens ('gemma-3-270m': "
    "the bundled model's) instead of words.",
)
@click.option("--allow-fewer", is_flag=True, help="Use fewer than k demos if the pool is small.")
@click.option("--json", "as_json", is_flag=True, help="Print the prompt and its provenance.")
@friendly_errors
def build(
    pool_path: Path,
    queries: tuple[str, ...],
    selector: str,
    k: int,
    orderer: str,
    formatter: str,
    template: str | None,
    instruction: str | None,
    verbalize: tuple[str, ...],
    seed: int,
    input_fields: tuple[str, ...],
    output_field: str,
    selector_options: tuple[str, ...],
    token_budget: int | None,
    tokenizer: str | None,
    allow_fewer: bool,
    as_json: bool,
) -> None:
    """Build a few-shot prompt for a query from a pool file and print it.

    The selector picks k demonstrations from the pool, the orderer arranges them and the
    formatter renders them with the query. The same --seed always gives the same prompt.
    Pool fields default to `text` and `label`, the Hugging Face classification convention.

    \b
    Examples:
      iclkit build --pool pool.jsonl --query "a gripping film" --k 4
      iclkit build --pool pool.jsonl --query "dull" --selector balanced --seed 3 \\
          --template "Review: {text}\\nSentiment: {output}" \\
          --verbalize 0=negative --verbalize 1=positive --json
      iclkit build --pool nli.csv --input-field premise --input-field hypothesis \\
          --query '{"premise": "...", "hypothesis": "..."}' --formatter chat

    With several --input-field, give each query as a JSON object of those fields.
    With --json the output is {"prompt", "messages", "demos": [{"index", "score", "input",
    "output"}], "dropped"}; with several queries, one JSON object per line.
    """
    pool = Pool.load(pool_path, input_fields=list(input_fields), output_field=output_field)
    selector_spec = {"name": selector}
    selector_spec |= _options_for(GROUPS["selectors"], selector, {"seed": seed})
    selector_spec |= _parse_assignments(selector_options, "--option")
    orderer_spec = {"name": orderer} | _options_for(GROUPS["orderers"], orderer, {"seed": seed})
    formatter_extra: dict[str, Any] = {}
    if verbalize:
        formatter_extra["verbalizer"] = {
            str(key): str(value)
            for key, value in _parse_assignments(verbalize, "--verbalize").items()
        }
    if template is not None:
        template = template.replace("\\n", "\n")
        formatter_extra["template"] = template
        formatter_extra["input_template"] = template
    formatter_spec = {"name": formatter} | _options_for(
        GROUPS["formatters"], formatter, formatter_extra
    )
    builder = PromptBuilder(
        selector=selector_spec,
        orderer=orderer_spec,
        formatter=formatter_spec,
        k=k,
        instruction=instruction,
        token_budget=token_budget,
        length_fn=_length_fn(tokenizer),
        allow_fewer=allow_fewer,
    ).fit(pool)
    parsed_queries: list[Any] = [_parse_query(query, len(input_fields)) for query in queries]
    prompts = builder.build_batch(parsed_queries)
    for number, prompt in enumerate(prompts):
        if as_json:
            click.echo(json.dumps(prompt.to_json_dict(), ensure_ascii=False))
        else:
            if number:
                click.echo("\n" + "=" * 40 + "\n")
            click.echo(prompt.text)
        if prompt.dropped:
            ids = ", ".join(
                f"{d.index}" + (f" ({d.example.id})" if d.example.id else "")
                for d in prompt.dropped
            )
            unit = "words" if tokenizer is None else f"{tokenizer} tokens"
            click.echo(
                f"dropped {len(prompt.dropped)} demonstration(s) to fit {token_budget} {unit}: "
                f"pool index {ids}",
                err=True,
            )


def _length_fn(tokenizer: str | None) -> Callable[[str], int]:
    """Words, or the tokens of a local tokenizer (read offline)."""
    if tokenizer is None:
        return whitespace_length
    from iclkit.bundled_models import load_tokenizer

    loaded = load_tokenizer(tokenizer)
    return lambda text: len(loaded(text).input_ids)


def _parse_query(query: str, n_fields: int) -> str | dict[str, Any]:
    if n_fields == 1:
        return query
    try:
        value = json.loads(query)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise click.BadParameter(
            f"with {n_fields} --input-field options each query must be a JSON object of those "
            f"fields, got {query!r}",
            param_hint="--query",
        )
    return value


# Command groups defined in their own modules (imported after `main` exists).
from iclkit.classifier_cli import predict, tune  # noqa: E402
from iclkit.experiment.cli import report, run  # noqa: E402
from iclkit.mech.cli import mech  # noqa: E402

main.add_command(run)
main.add_command(report)
main.add_command(tune)
main.add_command(predict)
main.add_command(mech)

if __name__ == "__main__":  # pragma: no cover
    main()
