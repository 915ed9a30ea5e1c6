"""The pipeline spec: one vocabulary from YAML to scorer, with secrets kept out of every form."""

import json

import pytest
from click.testing import CliRunner

from iclkit import PipelineSpec
from iclkit.cli import main
from iclkit.errors import ConfigError
from iclkit.experiment import load_config, plan_experiment, validate_config
from iclkit.spec import validate_spec

LABELS = {"negative": "bad", "positive": "good"}
KEY = "sk-PLANTED-1"
OPENAI = {"name": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key": KEY}


def test_defaults_and_label_lists():
    spec = PipelineSpec(labels=["no", "yes"])
    assert spec.labels == {"no": "no", "yes": "yes"}
    assert spec.selector == {"name": "random"} and spec.k == 4 and spec.seed is None
    assert spec.classifier.method == {"name": "loglik"} and spec.classifier.calibration is None
    calibrated = PipelineSpec(labels=LABELS, classifier={"calibration": "contextual"})
    assert calibrated.classifier.calibration == {"name": "contextual"}
    assert (
        PipelineSpec(labels=LABELS, classifier={"calibration": "none"}).classifier.calibration
        is None
    )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"selector": "knnn"}, "selector: unknown selector 'knnn'"),
        ({"selector": {"name": "mmr", "lamda": 0.5}}, "selector: selector 'mmr': "),
        ({"formatter": {"name": "text", "verbalizer": {"a": "b"}}}, "given once, in labels"),
        ({"formatter": {"name": "text", "template": "{text}"}}, "formatter: template"),
        ({"k": -1}, "k: Input should be greater than or equal to 0"),
        ({"classifier": {"method": "generate", "calibration": "contextual"}}, "generate"),
        ({"labels": {"a": "x", "b": "x"}}, "share a verbalization"),
        ({"labels": {"a": "x", "b": None}}, "must be text or integers, got None"),
    ],
)
def test_bad_specs_name_the_field(change, fragment):
    with pytest.raises(ConfigError) as caught:
        validate_spec({"labels": LABELS, **change})
    assert fragment in str(caught.value)


def test_the_builder_takes_the_label_words_from_the_spec():
    spec = PipelineSpec(
        labels=LABELS, k=0, formatter={"name": "text", "template": "Q: {input}\nA: {output}"}
    )
    builder = spec.builder()
    assert builder.formatter == {
        "name": "text",
        "template": "Q: {input}\nA: {output}",
        "verbalizer": LABELS,
    }
    scorer = spec.scorer(spec.create_backend())
    assert scorer.labels == LABELS and type(scorer.method).__name__ == "LoglikMethod"


def test_a_secret_option_is_in_no_form_of_the_spec():
    spec = PipelineSpec(labels=LABELS, backend=OPENAI)
    public = PipelineSpec(
        labels=LABELS, backend={k: v for k, v in OPENAI.items() if k != "api_key"}
    )
    assert spec.identity() == public.identity()  # rotating a key changes no identity
    for form in (json.dumps(spec.to_dict()), repr(spec), str(spec), spec.model_dump_json()):
        assert KEY not in form
    assert spec.options("backend")["api_key"] == KEY  # only the constructor gets it
    assert spec.create_backend().api_key == KEY
    assert KEY not in repr(spec.create_backend())


def test_a_secret_in_an_experiment_config_reaches_no_output(tmp_path, config_dict, write_yaml):
    raw = config_dict(pipeline={"backend": OPENAI, "formatter": {"name": "text"}})
    config = validate_config(raw)
    plan = plan_experiment(config)
    other = plan_experiment(
        validate_config(
            config_dict(pipeline={**raw["pipeline"], "backend": {**OPENAI, "api_key": "sk-OTHER"}})
        )
    )
    assert [c.id for c in plan.cells] == [c.id for c in other.cells]
    assert KEY not in json.dumps(plan.info())
    assert all(c.options("backend")["api_key"] == KEY for c in plan.cells)
    path = write_yaml(tmp_path, raw)
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    # An error about the backend shows the key redacted.
    bad = config_dict(pipeline={"backend": {**OPENAI, "colour": "red"}})
    with pytest.raises(ConfigError) as caught:
        validate_config(bad)
    assert "colour" in str(caught.value) and KEY not in str(caught.value)
    swept = config_dict(sweep={"backend": [{**OPENAI, "mode": "sideways"}]})
    with pytest.raises(ConfigError) as caught:
        validate_config(swept)
    assert "sweep.backend[0]" in str(caught.value) and KEY not in str(caught.value)
    assert "<redacted>" in str(caught.value)


def test_yaml_config_and_spec_share_one_vocabulary(tmp_path, config_dict, write_yaml):
    raw = config_dict(
        pipeline={
            "formatter": {"name": "chat", "input_template": "Review: {text}"},
            "backend": "local",
            "instruction": "Classify the review.",
            "classifier": {"method": "loglik-norm", "calibration": "contextual"},
        },
        sweep={"selector": "mmr", "k": 2, "selector.fetch_k": [3, 5]},
    )
    plan = plan_experiment(load_config(write_yaml(tmp_path, raw)))
    assert len(plan.cells) == 2
    for cell, fetch_k in zip(plan.cells, (3, 5), strict=True):
        assert cell.selector == {"name": "mmr", "fetch_k": fetch_k}
        spec = cell.pipeline([])
        fields = set(PipelineSpec.model_fields)
        assert set(spec.to_dict()) == fields
        assert PipelineSpec.model_validate(spec.to_dict()) == spec  # YAML ⇄ spec ⇄ JSON
        assert spec.formatter == {"name": "chat", "input_template": "Review: {text}"}
        assert spec.classifier.method == {"name": "loglik-norm"}
        assert spec.classifier.calibration == {"name": "contextual"}


def test_a_formatter_plugin_works_in_a_config(tmp_path, config_dict):
    from iclkit.formatters.text import TextFormatter
    from iclkit.registry import formatters

    class Shouty(TextFormatter):
        def __init__(self, verbalizer=None):
            super().__init__("REVIEW: {text}\nSENTIMENT: {output}", verbalizer=verbalizer)

    formatters.register("shouty", Shouty)
    try:
        raw = config_dict(pipeline={"formatter": "shouty"}, sweep={"selector": "first", "k": 1})
        plan = plan_experiment(validate_config(raw))
        (cell,) = plan.cells
        from iclkit.experiment.runner import UnitRunner

        prompts, _ = UnitRunner(plan).prompts(cell, list(plan.data.eval)[:1])
        assert prompts[0].text.startswith("REVIEW: ") and "SENTIMENT: " in prompts[0].text
    finally:
        formatters.unregister("shouty")
