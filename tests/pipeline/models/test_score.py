import numpy as np
import onnxruntime as ort
import pytest

from pipeline.data.imdb import load_reviews
from pipeline.models import export, linear, score
from pipeline.models.text import tokenize
from tests.conftest import real_archive


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    frame = load_reviews(real_archive(), sample=600, seed=5, progress=False).frame
    corpus = tokenize(frame["display_text"], ngram_max=2)
    rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    model = linear.fit(corpus, frame["label"].to_numpy(), rows, model_id="nblr-train", min_df=2)
    path = export.export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx", tokenizer_spec=corpus.tokenizer_spec(),
                              classes=("negative", "positive"))
    return frame, corpus, model, path


def test_onnx_matches_scikit_learn_on_every_review(trained):
    frame, corpus, model, path = trained
    onnx_model = score.OnnxTextModel.load(path, device="cpu")
    cols = onnx_model.columns_in(corpus.vocab)
    assert (cols >= 0).all()
    probs = onnx_model.score_counts(corpus.counts[:, cols])
    native = model.predict_proba(corpus)
    assert probs.shape == (len(frame), 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    assert np.max(np.abs(probs - native)) <= 1e-4
    assert score.check_parity(probs, native, model_id="x") <= 1e-4


def test_model_file_is_self_describing(trained):
    frame, corpus, model, path = trained
    onnx_model = score.OnnxTextModel.load(path, device="cpu")
    assert onnx_model.model_id == "nblr-train" and onnx_model.classes == ("negative", "positive")
    assert list(onnx_model.vocab) == list(model.vocab)
    texts = frame["text"].tolist()[:50]  # raw text with <br />: the file alone must score it
    p_text = onnx_model.score_texts(texts)
    cols = onnx_model.columns_in(corpus.vocab)
    p_counts = onnx_model.score_counts(corpus.counts[:50][:, cols])
    assert np.allclose(p_text, p_counts, atol=1e-6)
    assert p_text[0, 1] != p_text[1, 1]


def test_crafted_reviews_go_the_right_way(trained):
    onnx_model = score.OnnxTextModel.load(trained[3], device="cpu")
    p = onnx_model.score_texts(["A wonderful, brilliant and moving film. Loved it.",
                                "Awful, boring, the worst waste of time."])[:, 1]
    assert p[0] > 0.5 > p[1]


def test_a_multiclass_model_exports_a_softmax_that_matches(tmp_path):
    import pandas as pd

    words = {0: "awful dreadful", 1: "fine okay", 2: "superb wonderful"}
    texts = pd.Series([f"{words[k]} film number {i}" for i in range(30) for k in range(3)])
    labels = np.array([k for _ in range(30) for k in range(3)])
    corpus = tokenize(texts, ngram_max=2)
    model = linear.fit(corpus, labels, np.arange(90), model_id="m3", n_classes=3, min_df=1)
    path = export.export_onnx(model, tmp_path / "m3.onnx", tokenizer_spec=corpus.tokenizer_spec(),
                              classes=("bad", "meh", "good"))
    session = score.OnnxTextModel.load(path, device="cpu")
    probs = session.score_texts(texts.tolist())
    assert session.classes == ("bad", "meh", "good") and probs.shape == (90, 3)
    assert np.max(np.abs(probs - model.predict_proba(corpus))) <= 1e-5
    assert session.score_texts(["a superb, wonderful film"]).argmax() == 2


def test_parity_error_names_the_gap():
    with pytest.raises(score.ParityError, match="m1: ONNX and the native model differ by 2.00e-03"):
        score.check_parity(np.array([0.5, 0.1]), np.array([0.5, 0.102]), model_id="m1")


def test_a_gpu_session_asks_for_full_float32(trained, monkeypatch):
    """On an H100, ONNX Runtime's default TF32 moved the networks' probabilities by up to 9e-4 from the
    CPU's (bench/gpu_check.py), past the parity limit; a CUDA session must turn it off."""
    path = trained[3]
    seen = {}
    real = ort.InferenceSession

    def recording(model, options, providers):
        seen["providers"] = providers
        return real(model, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(score, "providers", lambda device: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", recording)
    score.OnnxTextModel.load(path)
    assert seen["providers"] == [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]


def test_a_stored_model_is_loaded_only_if_its_file_is_the_one_the_run_wrote(sample_run, sample_config, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(sample_config.db.parent, folder)
    db = folder / sample_config.db.name
    run_id, model_id = sample_run.run_id, "nblr-train"
    model = score.load_stored(db, run_id, model_id, device="cpu")
    assert model.model_id == model_id and model.score_texts(["A wonderful film."]).shape == (1, 2)

    path = next(folder.glob(f"**/{run_id}/{model_id}.onnx"))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of the last initializer: still a valid model, a different one
    path.write_bytes(bytes(data))
    with pytest.raises(score.ModelFileError, match=rf"{model_id}.onnx is not the model file the run wrote \(sha256 "
                                                   r"[0-9a-f]{16}\.\.\., the run recorded [0-9a-f]{16}\.\.\.\).*"
                                                   "Run the pipeline again"):
        score.load_stored(db, run_id, model_id, device="cpu")
    path.unlink()
    with pytest.raises(score.ModelFileError, match="cannot be read"):
        score.load_stored(db, run_id, model_id, device="cpu")
