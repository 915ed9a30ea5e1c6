"""ICLClassifier: a scikit-learn estimator over the pipeline spec, saved and loaded."""

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from iclkit import ICLClassifier, Pool
from iclkit.embedding.index import VectorIndex
from iclkit.embedding.sentence_transformer import SentenceTransformerEmbedder
from iclkit.errors import ConfigError, DataError, NotFittedError

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "examples" / "data" / "sentiment_pool.jsonl"
EVAL = ROOT / "examples" / "data" / "sentiment_eval.jsonl"
FORMATTER = {"name": "text", "template": "Review: {text}\nSentiment: {output}"}
KEY = "sk-PLANTED-1"
OPENAI = {"name": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key": KEY}


def _eval(n):
    rows = [json.loads(line) for line in EVAL.read_text().splitlines()][:n]
    return [row["text"] for row in rows], [row["label"] for row in rows]


def _knn(**options):
    return ICLClassifier(selector="knn", k=2, formatter=FORMATTER, **options)


def test_the_constructor_only_stores_its_keywords():
    clf = ICLClassifier(selector="knn", k=3, classifier={"calibration": "contextual"})
    assert clf.get_params()["k"] == 3 and clf.get_params()["selector"] == "knn"
    assert clone(clf).get_params() == clf.get_params()
    assert clf.set_params(k=2).k == 2
    assert not [name for name in vars(clf) if name.endswith("_")]
    assert repr(clf) == (
        "ICLClassifier(classifier={'calibration': 'contextual'}, k=2, selector='knn')"
    )
    with pytest.raises(NotFittedError):
        clf.predict(["fine"])


def test_invalid_keywords_fail_at_fit_with_the_field_named():
    X, y = _eval(4)
    with pytest.raises(ConfigError, match="selector: unknown selector 'knnn'"):
        ICLClassifier(selector="knnn").fit(X, y)
    with pytest.raises(ConfigError, match=r"training labels \['positive'\] are not in labels"):
        ICLClassifier(labels=["negative", "neutral"]).fit(X, y)
    with pytest.raises(ConfigError, match="not a single string"):
        ICLClassifier().fit("one review", ["positive"])
    with pytest.raises(DataError, match="X has 4 inputs but y has 3 labels"):
        ICLClassifier().fit(X, y[:3])


def test_labels_come_back_with_the_type_y_had():
    X, _ = _eval(6)
    clf = ICLClassifier(k=2).fit(X, np.array([0, 1, 0, 1, 1, 0]))
    assert list(clf.classes_) == [0, 1] and all(type(c) is int for c in clf.classes_)
    assert clf.spec_.labels == {"0": "0", "1": "1"}
    assert len(clf.pool_) == 6


def test_save_and_load_embed_nothing_and_build_no_index(tmp_path, monkeypatch):
    clf = _knn(labels={"negative": "negative", "positive": "positive"}).fit(Pool.load(POOL))
    folder = clf.save(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} == {
        "iclkit-classifier.json",
        "pool.jsonl",
        "selector",
    }
    calls = {"encode": 0, "build": 0}
    encode, build = SentenceTransformerEmbedder.encode, VectorIndex.build

    def counted_encode(self, texts):
        calls["encode"] += 1
        return encode(self, texts)

    def counted_build(self, vectors):
        calls["build"] += 1
        return build(self, vectors)

    monkeypatch.setattr(SentenceTransformerEmbedder, "encode", counted_encode)
    monkeypatch.setattr(VectorIndex, "build", counted_build)
    loaded = ICLClassifier.load(folder)
    assert calls == {"encode": 0, "build": 0}
    assert loaded.builder_.selector_.embedded_count_ == 0
    assert loaded.spec_ == clf.spec_ and list(loaded.classes_) == list(clf.classes_)
    assert [e.model_dump() for e in loaded.pool_] == [e.model_dump() for e in clf.pool_]
    query = "the zipper broke on the first day"
    assert [d.index for d in loaded.builder_.build(query).demonstrations] == [
        d.index for d in clf.builder_.build(query).demonstrations
    ]
    # Saving again over a saved classifier replaces it; other folders are refused.
    clf.save(folder)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no saved classifier"):
        clf.save(tmp_path / "other")


def test_load_refuses_another_embedder_a_newer_format_and_other_folders(tmp_path):
    folder = _knn().fit(Pool.load(POOL)).save(tmp_path / "model")
    identity = folder / "selector" / "embedder.json"
    saved = json.loads(identity.read_text())
    identity.write_text(json.dumps({**saved, "embedder": "all-mpnet-base-v2@0123"}))
    with pytest.raises(ConfigError, match="saved with the embedder 'all-mpnet-base-v2@0123'"):
        ICLClassifier.load(folder)
    identity.write_text(json.dumps(saved))
    manifest = folder / "iclkit-classifier.json"
    content = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**content, "format": 99}))
    with pytest.raises(ConfigError, match="format 99.*upgrade iclkit"):
        ICLClassifier.load(folder)
    with pytest.raises(DataError, match="not a saved classifier"):
        ICLClassifier.load(tmp_path)


def test_no_key_in_a_saved_folder_or_a_repr(tmp_path):
    clf = ICLClassifier(selector="first", k=2, backend=OPENAI).fit(Pool.load(POOL))
    assert KEY not in repr(clf) and "<redacted>" in repr(clf)
    assert KEY not in clf._repr_html_()
    folder = clf.save(tmp_path / "model")
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert ICLClassifier.load(folder).backend_.api_key is None  # from the environment, later
    assert ICLClassifier.load(folder, api_key="sk-NEW").backend_.api_key == "sk-NEW"


@pytest.mark.slow
def test_predictions_probabilities_provenance_and_a_reloaded_copy(tmp_path, single_thread):
    X, y = _eval(6)
    clf = _knn().fit(Pool.load(POOL))
    detailed = clf.predict_detailed(X)
    labels = clf.predict(X)
    probabilities = clf.predict_proba(X)
    assert list(labels) == [p.label for p in detailed]
    assert probabilities.shape == (6, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert [clf.classes_[i] for i in probabilities.argmax(axis=1)] == list(labels)
    for prediction in detailed:
        provenance = prediction.to_json_dict()["demonstrations"]
        assert len(provenance) == 2 and provenance[0]["score"] >= provenance[1]["score"]
        assert all(clf.pool_[d["index"]].id == d["id"] for d in provenance)
    assert clf.score(X, y) == pytest.approx(np.mean(labels == np.array(y)))
    loaded = ICLClassifier.load(clf.save(tmp_path / "model"))
    assert list(loaded.predict(X)) == list(labels)
    assert np.allclose(loaded.predict_proba(X), probabilities, atol=1e-5)
    assert list(asyncio.run(loaded.apredict(X))) == list(labels)


@pytest.mark.slow
def test_cross_val_score_and_pipeline_with_real_scikit_learn(single_thread):
    X, y = _eval(12)
    X, y = np.array(X), np.array(y)
    scores = cross_val_score(ICLClassifier(selector="first", k=2, formatter=FORMATTER), X, y, cv=2)
    assert scores.shape == (2,) and all(0.0 <= s <= 1.0 for s in scores)
    pipeline = Pipeline(
        [
            ("lower", FunctionTransformer(lambda texts: [t.lower() for t in texts])),
            ("icl", ICLClassifier(selector="first", k=2, formatter=FORMATTER)),
        ]
    )
    assert 0.0 <= pipeline.fit(X, y).score(X, y) <= 1.0
    assert list(pipeline.classes_) == ["negative", "positive"]
