"""Export trained models to self-describing ONNX files.

Tokenizing stays outside the graph (skl2onnx's TF-IDF converter has known parity
problems, onnx/onnx#6078 and microsoft/onnxruntime#4201, and needs a locale), so
the graph starts from bags of n-gram ids:

    inputs   term_ids (N, L)  int64   ids into the model's vocabulary, padded with 0
             counts   (N, L)  float32 how often each id occurs; 0 marks padding
    outputs  probs    (N, K)  float32 class probabilities, class order of the metadata
             logits   (N, K') float32 the log-odds of class 1 (K' = 1, two classes) or the
                                      K softmax inputs

Inside: sublinear TF (1 + log count), times IDF, L2-normalised per review, times the
effective weights (V, K') (scale x LR coefficients), plus bias; then a sigmoid and
[1 - p, p] for two classes, a softmax for more. The vocabulary (JSON list, index =
term id), the class names and the tokenizer spec travel in the model's metadata, so
the file alone is enough to score new text (``pipeline.models.score``). skl2onnx is
not used because no converter covers a bag-of-ids input.

``export_network(trained, path, *, tokenizer_spec)`` writes a PyTorch network
(``pipeline.models.train_nn.TrainedNetwork``) with torch.onnx: input ``x`` (N, V) float32
multi-hot or ``token_ids`` (N, L) int64, outputs ``probs`` (N, K) and ``embedding``
(N, hidden), batch (and word) axes dynamic; vocabulary and classes travel in the
metadata the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.models.linear import LinearTextModel

OPSET = 17
META_VOCAB = "lossmap.vocabulary"
META_TOKENIZER = "lossmap.tokenizer"
META_MODEL = "lossmap.model_id"
META_CLASSES = "lossmap.classes"


def export_onnx(model: LinearTextModel, path: Path, *, tokenizer_spec: dict, classes) -> Path:
    """Write ``model`` to ``path`` (an .onnx file) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _graph(model.tfidf.idf_.astype(np.float32), model.weights.astype(np.float32),
                   model.bias.astype(np.float32))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lossmap")
    proto.ir_version = 8
    return _save(proto, path, model.model_id, model.vocab, tokenizer_spec, classes)


def _save(proto: onnx.ModelProto, path: Path, model_id: str, vocab, spec: dict, classes) -> Path:
    """Stamp the vocabulary, class names, tokenizer spec and model id into the metadata, check, write."""
    for key, value in (
        (META_VOCAB, json.dumps(list(vocab), ensure_ascii=False)),
        (META_TOKENIZER, json.dumps(spec)),
        (META_MODEL, model_id),
        (META_CLASSES, json.dumps(list(classes), ensure_ascii=False)),
    ):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    return path


def export_network(trained, path: Path, *, tokenizer_spec: dict, classes) -> Path:
    """Write a TrainedNetwork to ``path`` (.onnx) and return the path.

    Outputs ``probs`` (batch, K) and ``embedding`` (batch, d). The input is ``x``
    (batch, V) multi-hot for the dense network, ``token_ids`` (batch, tokens) int64
    for the sequence networks, with the batch and token axes dynamic.
    """
    import io
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trained.net.eval()
    name = trained.inputs.name
    if name == "x":
        example, axes = torch.zeros(2, len(trained.vocab)), {0: "batch"}
    else:
        example, axes = torch.ones(2, 8, dtype=torch.int64), {0: "batch", 1: "tokens"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is the legacy one
        torch.onnx.export(trained.net, (example,), buffer, input_names=[name], output_names=["probs", "embedding"],
                          dynamic_axes={name: axes, "probs": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    spec = {**tokenizer_spec, **trained.inputs.spec(), "family": trained.family}
    return _save(onnx.load_from_string(buffer.getvalue()), path, trained.model_id, trained.vocab, spec, classes)


def _graph(idf: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> onnx.GraphProto:
    """weights (V, K'), bias (K',): K' = 1 gives [1 - sigmoid, sigmoid], K' > 1 a softmax."""
    consts = [
        numpy_helper.from_array(idf, "idf"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "tiny"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
    ]
    n = helper.make_node
    nodes = [
        # sublinear tf: 1 + log(count) where count > 0, else 0
        n("Greater", ["counts", "zero"], ["present"]),
        n("Max", ["counts", "one"], ["count_ge1"]),
        n("Log", ["count_ge1"], ["log_count"]),
        n("Add", ["log_count", "one"], ["tf_raw"]),
        n("Where", ["present", "tf_raw", "zero"], ["tf"]),
        # tf * idf, L2-normalised per row
        n("Gather", ["idf", "term_ids"], ["idf_rows"]),
        n("Mul", ["tf", "idf_rows"], ["tfidf"]),
        n("Mul", ["tfidf", "tfidf"], ["sq"]),
        n("ReduceSum", ["sq", "axis1"], ["sumsq"], keepdims=1),
        n("Sqrt", ["sumsq"], ["norm_raw"]),
        n("Max", ["norm_raw", "tiny"], ["norm"]),
        n("Div", ["tfidf", "norm"], ["x"]),
        # logits = x . weights + bias: (N, L, 1) * (N, L, K') summed over the terms
        n("Unsqueeze", ["x", "axis2"], ["x3"]),
        n("Gather", ["weights", "term_ids"], ["w_rows"]),
        n("Mul", ["x3", "w_rows"], ["contrib"]),
        n("ReduceSum", ["contrib", "axis1"], ["dot"], keepdims=0),
        n("Add", ["dot", "bias"], ["logits"]),
    ]
    if weights.shape[1] == 1:
        nodes += [n("Sigmoid", ["logits"], ["p1"]), n("Sub", ["one", "p1"], ["p0"]),
                  n("Concat", ["p0", "p1"], ["probs"], axis=1)]
    else:
        nodes += [n("Softmax", ["logits"], ["probs"], axis=1)]
    k_out = 2 if weights.shape[1] == 1 else weights.shape[1]
    inputs = [
        helper.make_tensor_value_info("term_ids", TensorProto.INT64, ["batch", "terms"]),
        helper.make_tensor_value_info("counts", TensorProto.FLOAT, ["batch", "terms"]),
    ]
    outputs = [
        helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", k_out]),
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", weights.shape[1]]),
    ]
    return helper.make_graph(nodes, "linear_text_model", inputs, outputs, initializer=consts)
