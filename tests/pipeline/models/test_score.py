import numpy as np
import onnxruntime as ort
import pytest

from pipeline.models import export
from pipeline.models import score
from pipeline.models import linear as train
from pipeline.config import Config
from pipeline.data.imdb import load_reviews
from tests.conftest import real_archive


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    frame = load_reviews(real_archive(), sample=600, seed=5, progress=False).frame
    cfg = Config(min_df=2)
    corpus = train.tokenize(frame["display_text"], cfg)
    rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    model = train.fit(corpus, frame["label"].to_numpy(), rows, cfg, model_id="nblr-train")
    path = export.export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx", tokenizer_spec=corpus.tokenizer_spec())
    return frame, corpus, model, path


def test_onnx_matches_scikit_learn_on_every_review(trained):
    frame, corpus, model, path = trained
    onnx_model = score.OnnxTextModel.load(path, device="cpu")
    cols = onnx_model.columns_in(corpus.vocab)
    assert (cols >= 0).all()
    p, logit = onnx_model.score_counts(corpus.counts[:, cols])
    native_logit = model.predict_logit(corpus)
    native_p = 1 / (1 + np.exp(-native_logit))
    assert np.max(np.abs(p - native_p)) <= 1e-4
    assert np.max(np.abs(logit - native_logit)) <= 1e-3
    assert score.check_parity(p, native_p, model_id="x") <= 1e-4


def test_model_file_is_self_describing(trained):
    frame, corpus, model, path = trained
    onnx_model = score.OnnxTextModel.load(path, device="cpu")
    assert onnx_model.model_id == "nblr-train"
    assert list(onnx_model.vocab) == list(model.vocab)
    texts = frame["text"].tolist()[:50]  # raw text with <br />: the file alone must score it
    p_text, _ = onnx_model.score_texts(texts)
    cols = onnx_model.columns_in(corpus.vocab)
    p_counts, _ = onnx_model.score_counts(corpus.counts[:50][:, cols])
    assert np.allclose(p_text, p_counts, atol=1e-6)
    assert p_text[0] != p_text[1]


def test_crafted_reviews_go_the_right_way(trained):
    onnx_model = score.OnnxTextModel.load(trained[3], device="cpu")
    p, _ = onnx_model.score_texts(["A wonderful, brilliant and moving film. Loved it.",
                                   "Awful, boring, the worst waste of time."])
    assert p[0] > 0.5 > p[1]


def test_parity_error_names_the_gap():
    with pytest.raises(score.ParityError, match="m1: ONNX and scikit-learn differ by 2.00e-03"):
        score.check_parity(np.array([0.5, 0.1]), np.array([0.5, 0.102]), model_id="m1")


def test_cpu_machine_gets_cpu_provider_without_errors():
    assert score.providers("cpu") == ["CPUExecutionProvider"]
    if not score.cuda_usable():
        assert score.providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(ValueError, match="no usable CUDA GPU"):
            score.providers("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        score.providers("tpu")


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
