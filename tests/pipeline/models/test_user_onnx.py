"""A user's own ONNX classifier, built inside the test: a skl2onnx TF-IDF + logistic regression pipeline (string
input) and a small randomly initialised BERT exported with torch.onnx (token ids, with a WordPiece tokenizer.json
trained on the test's own texts). Scores match the native models; bad models are refused before any training."""

import numpy as np
import pytest
import torch

from pipeline.config import Config
from pipeline.data.dataset import LoadError
from pipeline.models.user_onnx import open_model
from pipeline.run import run_pipeline
from pipeline.store.files import cursor, open_readonly
from tests.conftest import real_archive

N = 300
CLASSES = ("neg", "pos")


def _convert(pipe, path):
    """A string-input ONNX file of a TF-IDF pipeline. skl2onnx lowercases in the en_US.UTF-8 locale by default,
    which a bare Debian lacks; C.UTF-8 is always there."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer

    onx = convert_sklearn(pipe, initial_types=[("text", StringTensorType([None, 1]))], target_opset=17,
                          options={TfidfVectorizer: {"locale": "C.UTF-8"}})
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    from pipeline.data.imdb import load_reviews

    frame = load_reviews(real_archive(), sample=N, seed=9, progress=False).frame
    table = frame.assign(id=frame["sample_id"], review=frame["text"],
                         sentiment=frame["label"].map({0: "neg", 1: "pos"}))[["id", "review", "sentiment", "split"]]
    path = tmp_path_factory.mktemp("user_onnx") / "reviews.parquet"
    table.to_parquet(path)
    return table, path


@pytest.fixture(scope="module")
def sklearn_model(reviews, tmp_path_factory):
    """TF-IDF + logistic regression trained on the train split, converted with skl2onnx (a ZipMap output)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    table, _ = reviews
    train = table[table["split"] == "train"]
    pipe = make_pipeline(TfidfVectorizer(lowercase=True, token_pattern=r"\b\w\w+\b"), LogisticRegression(C=10))
    pipe.fit(train["review"], train["sentiment"])
    return pipe, _convert(pipe, tmp_path_factory.mktemp("sk") / "tfidf_lr.onnx")


@pytest.fixture(scope="module")
def bert(reviews, tmp_path_factory):
    """A 2-layer BERT (hidden 32, random weights), its WordPiece tokenizer.json, exported with torch.onnx."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification

    table, _ = reviews
    folder = tmp_path_factory.mktemp("bert")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(table["review"], trainers.WordPieceTrainer(
        vocab_size=2000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    net = BertForSequenceClassification(BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=2, attn_implementation="eager")).eval()

    class Logits(torch.nn.Module):  # (logits, pooled output): what a fine-tuned classifier's export gives
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return self.inner.classifier(out.pooler_output), out.pooler_output

    ids = torch.tensor([[2, 5, 6, 3], [2, 7, 3, 0]])
    axes = {0: "batch"}
    torch.onnx.export(Logits(net).eval(), (ids, (ids > 0).long(), torch.zeros_like(ids)), str(folder / "bert.onnx"),
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["logits", "pooler_output"], opset_version=17, dynamo=False,
                      dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask",
                                                                               "token_type_ids")},
                                    "logits": axes, "pooler_output": axes})
    return net, folder / "bert.onnx", folder / "tokenizer.json", tok


def test_a_skl2onnx_pipeline_scores_like_scikit_learn(reviews, sklearn_model):
    table, _ = reviews
    pipe, path = sklearn_model
    model = open_model(path, classes=CLASSES, probe=table["review"].tolist())
    assert model.kind == "strings"
    probs, embedding = model.score(table["review"].tolist())
    assert embedding is None
    gap = np.abs(probs - pipe.predict_proba(table["review"])).max(axis=1)
    # ONNX Runtime's regular expressions (RE2) read \w as ASCII, Python as Unicode: reviews with letters such as
    # 'é' are tokenized differently by the converted graph, the others the same
    ascii_only = table["review"].map(str.isascii).to_numpy()
    assert gap[ascii_only].max() < 1e-6 and ascii_only.mean() > 0.8
    assert gap.max() < 0.05


def test_a_run_with_a_string_model_stores_it_seen_where_it_trained(reviews, sklearn_model, tmp_path):
    table, data = reviews
    pipe, path = sklearn_model
    summary = run_pipeline(Config(data=data, split_column="split", db=tmp_path / "s.duckdb", models_dir=tmp_path / "m",
                                  progress=False, dense=False, cnn=False, clusters=3, svd_dim=8, model=path,
                                  model_name="tf-idf LR", trained_on="train", issue_source="onnx"))
    con = open_readonly(summary.db)
    try:
        c = cursor(con)
        stored = c.execute("SELECT p.sample_id, p.probs, p.seen_in_training, s.split FROM predictions p "
                           "JOIN samples s USING (run_id, sample_id) WHERE p.run_id = ? AND p.family = 'onnx' "
                           "ORDER BY p.sample_id", [summary.run_id]).df()
        row = c.execute("SELECT name, role, onnx_path, onnx_sha256, provider FROM models WHERE run_id = ? "
                        "AND family = 'onnx'", [summary.run_id]).fetchone()
    finally:
        con.close()
    texts = table.set_index("id").loc[stored["sample_id"], "review"]
    gap = np.abs(np.stack(stored["probs"]) - pipe.predict_proba(texts)).max(axis=1)
    assert gap[texts.map(str.isascii).to_numpy()].max() < 1e-6  # see the test above
    assert (stored["seen_in_training"] == (stored["split"] == "train")).all()
    assert row[:2] == ("tf-idf LR", "own") and row[4] == "CPUExecutionProvider"
    copy = summary.db.parent / row[2]
    assert copy.read_bytes() == path.read_bytes()
    unseen = table[table["split"] != "train"]
    seen = table[table["split"] == "train"]
    accuracy, n_unseen, seen_accuracy = summary.own_accuracy["tf-idf LR"]
    assert n_unseen == len(unseen) and abs(accuracy - pipe.score(unseen["review"], unseen["sentiment"])) <= 2 / N
    assert abs(seen_accuracy - pipe.score(seen["review"], seen["sentiment"])) <= 2 / N


def test_a_transformer_graph_matches_pytorch_and_gives_an_embedding(reviews, bert):
    table, _ = reviews
    net, path, tokenizer, tok = bert
    texts = table["review"].tolist()[:64]
    model = open_model(path, classes=CLASSES, probe=texts, tokenizer=tokenizer, max_tokens=128)
    assert model.kind == "transformer" and model.embedding_output == "pooler_output"
    probs, embedding = model.score(texts)
    tok.enable_truncation(max_length=128)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"))
    encoded = tok.encode_batch(texts)
    with torch.no_grad():
        out = net(input_ids=torch.tensor([e.ids for e in encoded]),
                  attention_mask=torch.tensor([e.attention_mask for e in encoded]),
                  token_type_ids=torch.tensor([e.type_ids for e in encoded]), output_hidden_states=False)
        expected = torch.softmax(out.logits, dim=1).numpy()
    assert np.abs(probs - expected).max() < 1e-5
    assert embedding.shape == (len(texts), 32)


def test_a_run_with_a_transformer_maps_its_embedding(reviews, bert, tmp_path):
    _, data = reviews
    _, path, tokenizer, _ = bert
    summary = run_pipeline(Config(data=data, split_column="split", db=tmp_path / "t.duckdb", models_dir=tmp_path / "m",
                                  progress=False, dense=False, cnn=False, clusters=3, svd_dim=8, model=path,
                                  tokenizer=tokenizer, max_tokens=128, issue_source="ensemble"))
    con = open_readonly(summary.db)
    try:
        c = cursor(con)
        assert c.execute("SELECT count(*) FROM embeddings WHERE run_id = ? AND space = 'onnx-embedding'",
                         [summary.run_id]).fetchone()[0] == N
        assert c.execute("SELECT bool_and(seen_in_training) FROM predictions WHERE run_id = ? AND family = 'onnx'",
                         [summary.run_id]).fetchone()[0]
        assert c.execute("SELECT any_value(method), any_value(ranked_on) FROM label_issues WHERE run_id = ?",
                         [summary.run_id]).fetchone() == ("self_confidence", ["nblr", "onnx"])
    finally:
        con.close()
    assert (summary.db.parent / "m").rglob("own-tokenizer.json")


def _float_input_model(path):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression().fit(np.random.default_rng(0).normal(size=(20, 4)), [0, 1] * 10)
    path.write_bytes(convert_sklearn(lr, initial_types=[("features", FloatTensorType([None, 4]))],
                                     target_opset=17).SerializeToString())
    return path


def _three_class_model(path, table):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    labels = np.array(["bad", "good", "meh"])[np.arange(len(table)) % 3]
    pipe = make_pipeline(TfidfVectorizer(token_pattern=r"\b\w\w+\b"), LogisticRegression()).fit(table["review"], labels)
    return _convert(pipe, path)


def _small_tokenizer(path, table):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(table["review"], trainers.WordPieceTrainer(vocab_size=4000, special_tokens=["[PAD]", "[UNK]"],
                                                                       show_progress=False))
    tok.save(str(path))
    return path


@pytest.mark.parametrize("case", ["float input", "not onnx", "three classes", "no tokenizer", "other tokenizer"])
def test_a_model_that_does_not_fit_is_refused_before_training_with_what_it_has(case, reviews, bert, tmp_path,
                                                                               monkeypatch):
    from pipeline.models import linear

    table, data = reviews
    _, bert_path, _, _ = bert
    model, tokenizer, message = {
        "float input": (lambda: _float_input_model(tmp_path / "f.onnx"), None,
                        r"takes features \(tensor\(float\), shape \[None, 4\]\); Lossmap reads graphs that take one "
                        r"string tensor"),
        "not onnx": (lambda: (tmp_path / "x.onnx").write_text("hello") and tmp_path / "x.onnx", None,
                     r"cannot be opened by ONNX Runtime"),
        "three classes": (lambda: _three_class_model(tmp_path / "3.onnx", table), None,
                          r"names its classes bad, good, meh, but the data's classes are neg, pos"),
        "no tokenizer": (lambda: bert_path, None, r"takes token ids \(input_ids\); pass the tokenizer"),
        "other tokenizer": (lambda: bert_path, lambda: _small_tokenizer(tmp_path / "t.json", table),
                            r"has 4,000 tokens, but the model's embedding table has 2,000 rows"),
    }[case]
    monkeypatch.setattr(linear, "train_models", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(LoadError, match=message):
        run_pipeline(Config(data=data, db=tmp_path / "s.duckdb", models_dir=tmp_path / "m", progress=False,
                            dense=False, cnn=False, model=model(), tokenizer=tokenizer() if tokenizer else None))
    assert not (tmp_path / "s.duckdb").exists()


def test_logits_said_to_be_probabilities_are_refused(reviews, bert):
    table, _ = reviews
    _, path, tokenizer, _ = bert
    with pytest.raises(LoadError, match=r"--model-outputs probs was given, but 'logits' holds values that are not "
                                        r"probabilities.*use --model-outputs logits"):
        open_model(path, classes=CLASSES, probe=table["review"].tolist(), tokenizer=tokenizer, outputs="probs",
                   max_tokens=128)


def _word_model(folder, forward, name="one.onnx"):
    """A tiny token-id graph computing ``forward(input_ids, attention_mask)``, with a WordLevel tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    class Graph(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return forward(input_ids, attention_mask)

    tok = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "good": 150, "bad": 20}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tok.json"))
    ids = torch.tensor([[150, 20]])
    torch.onnx.export(Graph().eval(), (ids, torch.ones_like(ids)), str(folder / name), dynamo=False,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"input_ids": {0: "n", 1: "t"}, "attention_mask": {0: "n", 1: "t"}, "logits": {0: "n"}})
    return folder / name, folder / "tok.json"


def _one_logit(input_ids, attention_mask):
    return (input_ids.float() * attention_mask).sum(dim=1, keepdim=True) / 100.0 - 1.0


def test_a_single_logit_column_is_read_through_a_sigmoid_decided_once_for_every_text(tmp_path):
    path, tok = _word_model(tmp_path, _one_logit)
    model = open_model(path, classes=CLASSES, probe=["good"], tokenizer=tok)
    probs, _ = model.score(["good good", "bad"])
    expected = 1 / (1 + np.exp(-np.array([300 / 100 - 1, 20 / 100 - 1])))
    assert np.allclose(probs[:, 1], expected, atol=1e-6) and np.allclose(probs.sum(axis=1), 1)
    # 40 texts whose logit (0.5) could pass for a probability, and one whose logit (3.5) cannot: batches of 32 texts
    # once read the first batch as probabilities and the second as logits; now every text is read the same way
    probs, _ = model.score(["good"] * 40 + ["good good good"])
    assert np.allclose(probs[:40, 1], 1 / (1 + np.exp(-0.5)), atol=1e-6)


def test_a_model_giving_nan_fails_before_any_training_with_a_message(reviews, tmp_path, monkeypatch):
    from pipeline.models import linear

    _, data = reviews
    path, tok = _word_model(tmp_path, lambda i, m: torch.cat([_one_logit(i, m), _one_logit(i, m)], 1) * float("nan"))
    monkeypatch.setattr(linear, "train_models", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(LoadError, match=r"holds values that are not finite numbers \(NaN or infinity\)"):
        run_pipeline(Config(data=data, db=tmp_path / "s.duckdb", models_dir=tmp_path / "m", progress=False,
                            dense=False, cnn=False, model=path, tokenizer=tok))
    assert not (tmp_path / "s.duckdb").exists()


def _numbered_model(path, table, inverted: bool):
    """A skl2onnx pipeline trained on 0/1 labels: 1 = 'neg' when inverted, so its keys cannot be read by position."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    target = (table["sentiment"] == ("neg" if inverted else "pos")).astype(int)
    pipe = make_pipeline(TfidfVectorizer(token_pattern=r"\b\w\w+\b"), LogisticRegression(C=10)).fit(table["review"],
                                                                                                 target)
    return pipe, _convert(pipe, path)


def test_classes_numbered_by_the_model_need_their_names(reviews, tmp_path):
    table, _ = reviews
    pipe, path = _numbered_model(tmp_path / "numbered.onnx", table, inverted=True)
    with pytest.raises(LoadError, match=r"names its classes by number \(0, 1\).*--model-classes neg,pos"):
        open_model(path, classes=CLASSES, probe=table["review"].tolist())
    model = open_model(path, classes=CLASSES, probe=table["review"].tolist(), model_classes=("pos", "neg"))
    probs, _ = model.score(table["review"].tolist())
    ascii_only = table["review"].map(str.isascii).to_numpy()
    assert np.abs(probs[:, ::-1] - pipe.predict_proba(table["review"]))[ascii_only].max() < 1e-6  # 'neg' = key 1
    assert "1 = neg" in model.order_note


def test_a_graph_of_fixed_batch_and_length_is_fed_at_that_size(reviews, bert, tmp_path):
    table, _ = reviews
    net, _, tokenizer, tok = bert

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    ids = torch.ones((4, 32), dtype=torch.long)
    torch.onnx.export(Logits(net).eval(), (ids, ids), str(tmp_path / "fixed.onnx"), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"])
    texts = table["review"].tolist()[:10]
    model = open_model(tmp_path / "fixed.onnx", classes=CLASSES, probe=texts, tokenizer=tokenizer)
    probs, _ = model.score(texts)
    tok.enable_truncation(max_length=32)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), length=32)
    encoded = tok.encode_batch(texts)
    with torch.no_grad():
        expected = torch.softmax(net(input_ids=torch.tensor([e.ids for e in encoded]),
                                     attention_mask=torch.tensor([e.attention_mask for e in encoded])).logits, 1)
    assert probs.shape == (10, 2) and np.abs(probs - expected.numpy()).max() < 1e-5


def test_probabilities_said_to_be_logits_and_a_tokenizer_for_a_string_graph_are_refused(reviews, sklearn_model,
                                                                                         tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType

    table, _ = reviews
    pipe, path = sklearn_model
    plain = convert_sklearn(pipe, initial_types=[("text", StringTensorType([None, 1]))], target_opset=17,
                            options={TfidfVectorizer: {"locale": "C.UTF-8"}, id(pipe.steps[-1][1]): {"zipmap": False}})
    (tmp_path / "plain.onnx").write_bytes(plain.SerializeToString())
    with pytest.raises(LoadError, match=r"--model-outputs logits was given, but every row .* these are probabilities"):
        open_model(tmp_path / "plain.onnx", classes=CLASSES, probe=table["review"].tolist(), outputs="logits")
    model = open_model(tmp_path / "plain.onnx", classes=CLASSES, probe=table["review"].tolist())
    assert "read in the data's class order (neg, pos)" in model.order_note
    with pytest.raises(LoadError, match=r"takes the texts as strings .* Leave --tokenizer out"):
        open_model(path, classes=CLASSES, probe=["x"], tokenizer=tmp_path / "any.json")
