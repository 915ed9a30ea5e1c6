import json

import pandas as pd
import pytest
from datasets import Dataset
from pydantic import ValidationError

from iclkit import DataError, Example, Pool
from iclkit.field_map import FieldMap


def test_example_text_and_fields():
    single = Example(input="hello", output=1)
    assert single.output == "1"
    assert single.text == "hello"
    assert single.fields() == {"input": "hello"}
    pair = Example(input={"premise": "p", "hypothesis": "h"}, output="entailment")
    assert pair.text == "p\nh"
    assert pair.fields() == {"input": "p\nh", "premise": "p", "hypothesis": "h"}
    with pytest.raises(ValidationError):
        Example(input={})
    with pytest.raises(ValidationError):
        single.output = "2"  # frozen


def test_from_records_maps_fields_and_keeps_metadata(records):
    pool = Pool.from_records(records)
    assert len(pool) == 12
    assert pool.labels == ["neg", "pos"]
    assert pool[0].input == {"text": "a warm and funny film"}
    assert pool[0].id == "r0"
    custom = Pool.from_records(
        [{"review": "good", "stars": 5, "source": "web"}],
        input_fields="review",
        output_field="stars",
    )
    assert custom[0].output == "5"
    assert custom[0].metadata == {"source": "web"}


def test_from_jsonl_csv_pandas_hf_agree(tmp_path, records, pool_file):
    csv_path = tmp_path / "pool.csv"
    pd.DataFrame(records).to_csv(csv_path, index=False)
    pools = [
        Pool.load(pool_file),
        Pool.load(csv_path),
        Pool.from_pandas(pd.DataFrame(records)),
        Pool.from_hf(Dataset.from_list(records)),
    ]
    saved = tmp_path / "saved"
    Dataset.from_list(records).save_to_disk(str(saved))
    pools.append(Pool.load(saved))
    for pool in pools:
        assert [e.text for e in pool] == [r["text"] for r in records]
        assert [e.output for e in pool] == [r["label"] for r in records]
        assert [e.id for e in pool] == [r["id"] for r in records]


def test_multi_field_inputs(tmp_path):
    path = tmp_path / "nli.jsonl"
    path.write_text(json.dumps({"premise": "p1", "hypothesis": "h1", "label": "neutral"}) + "\n")
    pool = Pool.load(path, input_fields=["premise", "hypothesis"])
    assert pool[0].input == {"premise": "p1", "hypothesis": "h1"}
    query = pool.to_query({"premise": "p2", "hypothesis": "h2"})
    assert query.output is None and query.text == "p2\nh2"
    with pytest.raises(DataError, match="one input field"):
        pool.to_query("plain text")


def test_empty_pool_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.jsonl has no examples"):
        Pool.load(empty)
    with pytest.raises(DataError, match="no examples"):
        Pool.from_records([])


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n\n{"text": "broken", \n')
    with pytest.raises(DataError) as info:
        Pool.load(path)
    assert f"{path}:3:" in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert info.value.line == 3
    path.write_text('["a list"]\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1: expected a JSON object"):
        Pool.load(path)


def test_missing_fields_name_line_field_and_fix(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"sentence": "b", "label": "y"}\n')
    with pytest.raises(DataError) as info:
        Pool.load(path)
    message = str(info.value)
    assert f"{path}:2:" in message and "'text'" in message
    assert "sentence" in message and "--input-field" in message
    assert info.value.field == "text"
    path.write_text('{"text": "a"}\n')
    with pytest.raises(DataError, match="missing field 'label'.*--output-field"):
        Pool.load(path)
    with pytest.raises(DataError, match="record 2: missing field 'text'"):
        Pool.from_records([{"text": "a", "label": "x"}, {"label": "y"}])


def test_csv_errors_report_physical_line(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text('text,label\n"multi\nline",a\n,b\n')
    with pytest.raises(DataError, match=r"pool\.csv:4: missing field 'text'"):
        Pool.load(path)


def test_duplicate_ids_rejected(records):
    records[5]["id"] = "r1"
    with pytest.raises(DataError, match="duplicate id 'r1' at examples 1 and 5"):
        Pool.from_records(records)


def test_unsupported_suffix_and_missing_file(tmp_path):
    path = tmp_path / "pool.parquet"
    path.write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.parquet'"):
        Pool.load(path)
    with pytest.raises(FileNotFoundError):
        Pool.load(tmp_path / "nope.jsonl")


def test_matches_finds_the_query_by_text_or_id(records):
    pool = Pool.from_records(records)
    assert pool.matches(pool.to_query("dull and far too long")) == {1}
    assert pool.matches(Example(input="something else", id="r4")) == {4}
    assert pool.matches(pool.to_query("never seen")) == frozenset()


def test_field_map_is_shared_by_the_loaders_and_the_queries(tmp_path):
    records = [
        {"uid": "a1", "review": "good", "stars": 5},
        {"uid": "a2", "review": "bad", "stars": 1},
    ]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    mapping = {"input_fields": "review", "output_field": "stars", "id_field": "uid"}
    pools = [
        Pool.load(path, **mapping),
        Pool.from_jsonl(path, **mapping),
        Pool.from_records(records, **mapping),
        Pool.from_pandas(pd.DataFrame(records), **mapping),
        Pool.from_hf(Dataset.from_list(records), **mapping),
    ]
    for pool in pools:
        assert pool.field_map == FieldMap(("review",), "stars", "uid")
        assert (pool.input_fields, pool.output_field) == (("review",), "stars")
        assert [example.id for example in pool] == ["a1", "a2"]
        # A query record is read through the same mapping, id field included.
        query = pool.to_query({"uid": "a2", "review": "rewritten"})
        assert query.id == "a2" and query.metadata == {}
        assert pool.matches(query) == {1}
    with pytest.raises(DataError, match="input_fields is empty"):
        Pool.from_records(records, input_fields=[])
    with pytest.raises(DataError, match=r"^query: missing field 'review'"):
        pools[0].to_query({"text": "no review field"})


# -- bad input is one clear error ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_pool_that_is_not_utf8_names_file_line_and_encoding(tmp_path, suffix):
    path = tmp_path / f"pool{suffix}"
    sep = "," if suffix == ".csv" else "\t"
    if suffix == ".jsonl":
        text = '{"text": "fine", "label": "a"}\n{"text": "café", "label": "b"}\n'
    else:
        text = f"text{sep}label\nfine{sep}a\ncafé{sep}b\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=rf"pool\{suffix}:\d: not UTF-8 text \(byte 0xe9 at"):
        Pool.load(path)
    line = 2 if suffix == ".jsonl" else 3
    with pytest.raises(DataError, match=rf"pool\{suffix}:{line}: .*Fix: save the file as UTF-8"):
        Pool.load(path)


def test_csv_with_a_utf8_bom_keeps_its_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfid,text,label\nr1,good,pos\nr2,bad,neg\n")
    pool = Pool.load(path)
    assert [example.id for example in pool] == ["r1", "r2"]
    jsonl = tmp_path / "notepad.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"id": "r1", "text": "good", "label": "pos"}\n')
    assert Pool.load(jsonl)[0].id == "r1"


def test_csv_field_longer_than_131072_characters_is_read(tmp_path, monkeypatch):
    import csv

    path = tmp_path / "long.csv"
    long_text = "word " * 60_000  # 300,000 characters
    path.write_text(f'text,label\n"{long_text}",a\nshort,b\n')
    limit = csv.field_size_limit()
    pool = Pool.load(path)
    assert pool[0].text == long_text and pool[1].text == "short"
    assert csv.field_size_limit() == limit  # the process-wide setting is left as it was
    # Past the reader's own limit, the error names the line instead of raising _csv.Error.
    monkeypatch.setattr("iclkit.pool.CSV_FIELD_LIMIT", 1000)
    with pytest.raises(DataError, match=r"long\.csv:2: not valid CSV \(field larger than"):
        Pool.load(path)


def test_deeply_nested_json_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(
        '{"text": "a", "label": "x"}\n{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    )
    with pytest.raises(DataError, match=r"deep\.jsonl:2: JSON nested too deeply to read"):
        Pool.load(path)


@pytest.mark.parametrize(
    ("record", "field", "kind"),
    [
        ({"text": {"a": 1}, "label": "x"}, "text", "dict"),
        ({"text": ["a"], "label": "x"}, "text", "list"),
        ({"text": "a", "label": {"name": "x"}}, "label", "dict"),
        ({"text": "a", "label": "x", "id": [1]}, "id", "list"),
    ],
)
def test_a_json_object_as_text_label_or_id_is_an_error_not_stringified(
    tmp_path, record, field, kind
):
    path = tmp_path / "pool.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=rf"pool\.jsonl:1: field '{field}' holds a {kind}"):
        Pool.load(path)


def test_python_api_type_errors_are_clear(records):
    from iclkit import ConfigError, PromptBuilder

    with pytest.raises(DataError, match="record 2: expected a mapping of fields or an Example"):
        Pool.from_records([records[0], None])
    with pytest.raises(DataError, match="item 0 is a str, not an Example"):
        Pool(["text"])
    with pytest.raises(ConfigError, match=r"fit\(\) takes a Pool, got NoneType"):
        PromptBuilder().fit(None)
    builder = PromptBuilder(k=1).fit(Pool.from_records(records))
    with pytest.raises(DataError, match="a query is a string, a mapping of fields or an Example"):
        builder.build(None)


def test_datasets_folder_without_datasets_installed_names_the_extra(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "saved"
    Dataset.from_list([{"text": "a", "label": "x"}]).save_to_disk(str(folder))
    code = (
        "import sys\n"
        "sys.modules['datasets'] = None  # as if the package were not installed\n"
        "from iclkit import DataError, Pool\n"
        "try:\n"
        f"    Pool.load({str(folder)!r})\n"
        "except DataError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "needs the 'datasets' package. Fix: pip install 'iclkit[datasets]'" in result.stdout
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert any(
        d.startswith("datasets") for d in pyproject["project"]["optional-dependencies"]["datasets"]
    )
