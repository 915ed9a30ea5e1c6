"""The ``iclkit tune`` and ``iclkit predict`` commands (registered in :mod:`iclkit.cli`).

Heavy modules (the runner, scikit-learn, the backends) are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from iclkit.cli_errors import friendly_errors


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [default: runs/<config name>-tune].",
)
@click.option(
    "--metric",
    type=click.Choice(["accuracy", "macro_f1"]),
    default=None,
    help="What to maximise on the dev split [default: the config's tune.metric, accuracy].",
)
@click.option("--overwrite", is_flag=True, help="Delete the dev-set results already in --out.")
@click.option(
    "--evaluate",
    is_flag=True,
    help="Then run the winner, each method family's best and the baselines on data.eval.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@friendly_errors
def tune(
    config_path: Path,
    out: Path | None,
    metric: str | None,
    overwrite: bool,
    evaluate: bool,
    no_progress: bool,
) -> None:
    """Choose the best pipeline of CONFIG's grid on a dev split, and save it as a classifier.

    The grid runs on data.dev, or on tune.dev_size examples carved from the pool (they are
    then never demonstrations). data.eval is never read: evaluation labels cannot influence
    the choice. Pipelines are ranked by the metric, ties going to fewer prompt tokens per
    query. The baselines (majority label, zero-shot, kNN label vote with its k chosen on the
    dev split; see the config's baselines section) are ranked with them. The winner, fitted on
    the pool it was measured with, is saved to OUT/model; the ranking goes to
    OUT/leaderboard.csv and .md, the dev-set run to OUT/grid. Re-running continues an
    interrupted grid.

    With --evaluate, the winner, the best dev cell of every method family and every baseline
    are then run on data.eval with that same pool (OUT/evaluation, OUT/evaluation.md with the
    winner's margin over the best baseline); this comes after the choice and cannot change it.

    \b
    Examples:
      iclkit tune examples/real-data/sst2.yaml --out runs/sst2-tune
      iclkit predict --model runs/sst2-tune/model --text "a gripping, funny film"
    """
    from iclkit.experiment.config import load_config
    from iclkit.experiment.report import markdown_table
    from iclkit.tuning import LEADERBOARD_COLUMNS
    from iclkit.tuning import tune as run_tune

    config = load_config(config_path)
    folder = out if out is not None else Path("runs") / f"{config.name}-tune"
    result = run_tune(
        config,
        folder,
        metric=metric,
        overwrite=overwrite,
        progress=not no_progress,
        evaluate=evaluate,
    )
    shown = [c for c in LEADERBOARD_COLUMNS if c not in ("cell", "n")]
    varying = [
        c
        for c in shown
        if c in ("rank", "selector", "k") or len({str(r.get(c)) for r in result.leaderboard}) > 1
    ]
    click.echo(markdown_table(result.leaderboard[:15], varying))
    if len(result.leaderboard) > 15:
        click.echo(f"... {len(result.leaderboard) - 15} more rows in {folder / 'leaderboard.md'}")
    click.echo(f"\nSaved the winner to {result.model}")
    click.echo(f'  iclkit predict --model {result.model} --text "..."')
    if result.evaluation is not None:
        from iclkit.tuning import EVALUATION_COLUMNS, margin

        click.echo("\nOn the evaluation set (data.eval):")
        columns = [c for c in EVALUATION_COLUMNS if c not in ("accuracy_low", "accuracy_high")]
        click.echo(markdown_table(result.evaluation, columns))
        found = margin(result.evaluation)
        if found is not None:
            click.echo(f"\nChosen minus the best baseline ({found[1]}): {found[0]:+.3f}")
        click.echo(f"Wrote {folder / 'evaluation.md'}")


def _prediction_line(query: Any, prediction: Any, as_json: bool) -> str:
    if as_json:
        payload = {"id": query.id, "input": query.input, **prediction.to_json_dict()}
        if query.output is not None:
            payload["gold"] = query.output
        return json.dumps(payload, ensure_ascii=False)
    best = prediction.probabilities.get(prediction.label) if prediction.label else None
    confidence = "" if best is None else f"\t{best:.3f}"
    return f"{prediction.label}{confidence}\t{query.text[:80]}"


@click.command()
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A saved classifier folder (iclkit tune --out DIR writes DIR/model).",
)
@click.option("--text", "texts", multiple=True, help="An input to classify (repeatable).")
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A .jsonl, .csv or .tsv file of inputs (the model's input fields; a label optional).",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["auto", "label-text"]),
    default="auto",
    show_default=True,
    help="The --input file's format: by its suffix (.jsonl, .csv, .tsv), or LABEL TEXT lines.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the predictions here (JSON lines) instead of printing them.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per prediction.")
@click.option("--api-key-env", default=None, help="Read the backend's API key from this variable.")
@friendly_errors
def predict(
    model_dir: Path,
    texts: tuple[str, ...],
    input_path: Path | None,
    file_format: str,
    output_path: Path | None,
    as_json: bool,
    api_key_env: str | None,
) -> None:
    """Predict labels with a saved classifier, with probabilities and the demonstrations used.

    Inputs come from --text (repeatable) or --input FILE. Text output is one line per input:
    the label, its probability and the input. --json (and --output) give one JSON object per
    input: id, input, label, probabilities, scores and the demonstrations (index, id, score,
    input, output). When the input file has labels, the accuracy is printed at the end.

    \b
    Examples:
      iclkit predict --model runs/sst2-tune/model --text "dull and far too long"
      iclkit predict --model runs/sst2-tune/model --input reviews.jsonl --output out.jsonl
      iclkit predict --model runs/sst2-tune/model --input stsa.binary.dev --format label-text
    """
    import os

    from iclkit.classifier import ICLClassifier
    from iclkit.errors import ConfigError
    from iclkit.example import Example
    from iclkit.metrics import accuracy
    from iclkit.pool import read_queries

    if bool(texts) == (input_path is not None):
        raise click.UsageError("give inputs with --text (repeatable) or --input FILE, not both")
    secrets: dict[str, Any] = {}
    if api_key_env is not None:
        if api_key_env not in os.environ:
            raise ConfigError(f"--api-key-env: the variable {api_key_env} is not set")
        secrets["api_key"] = os.environ[api_key_env]
    classifier = ICLClassifier.load(model_dir, **secrets)
    if input_path is not None:
        queries = read_queries(input_path, classifier.pool_.field_map, file_format)
    else:
        queries = [classifier.pool_.to_query(text) for text in texts]
        queries = [q.model_copy(update={"id": f"text-{n}"}) for n, q in enumerate(queries, 1)]
    predictions = classifier.predict_detailed([Example(input=query.input) for query in queries])
    lines = [
        _prediction_line(query, prediction, as_json or output_path is not None)
        for query, prediction in zip(queries, predictions, strict=True)
    ]
    if output_path is not None:
        from iclkit.experiment.store import write_atomic

        write_atomic(output_path, "".join(line + "\n" for line in lines))
        click.echo(f"Wrote {len(lines)} predictions to {output_path}", err=True)
    else:
        for line in lines:
            click.echo(line)
    gold = [query.output for query in queries]
    if all(label is not None for label in gold) and gold:
        score = accuracy(gold, [p.label for p in predictions])
        click.echo(f"accuracy {score:.3f} on {len(gold)} labelled inputs", err=True)
