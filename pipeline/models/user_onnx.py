"""Score the user's own ONNX classifier on every text (issue 13, ``--model FILE.onnx``), checked before any work.

Two kinds of graph are read, told apart by their inputs:

- **strings**: one ``tensor(string)`` input, (N,) or (N, 1), such as a scikit-learn pipeline
  converted with skl2onnx. Its probabilities come from a float (N, K) output, or from a
  ZipMap (``seq(map(...))``) whose keys are matched to the data's class names (or read as
  class indices 0..K-1 when they are integers that name no class).
- **transformer**: int64 ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when
  the graph has it), fed from ``--tokenizer tokenizer.json`` through the ``tokenizers``
  library, truncated to ``max_tokens``. The class output is the (N, K) output named like
  ``logits`` / ``probs`` (else the first with K columns); another 2-D float output (a
  pooled one, such as ``pooler_output``) becomes the embedding.

``outputs`` says what the class output holds: ``logits`` (softmax applied; one column:
sigmoid), ``probs``, or ``auto`` (probabilities when every row lies in [0, 1] and sums to
1, else logits); stating one the values contradict is refused. Which class each column
(or integer ZipMap key) is: ``model_classes``, the model's class names in its own order
(``--model-classes``); without it, a ZipMap's string keys are matched to the data's class
names, integer keys are refused (which is which cannot be told), and a tensor's columns
are read in the data's class order (sorted names, numerically when all are integers),
which ``UserModel.order_note`` says. A graph exported with a fixed batch or sequence
length is fed at that size.

``open_model(path, *, classes, tokenizer, ...)`` inspects the file and scores the two
longest texts as a probe, so a graph with unexpected inputs or outputs, a tokenizer
that does not fit its embedding table, or a text too long for it is a ``LoadError``
naming what it has and what was expected, before any training. ``UserModel.score``
then returns (N, K) float64 probabilities and the (N, D) embedding or None.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm.auto import tqdm

from pipeline.data.dataset import LoadError, examples
from pipeline.models.devices import CUDA_OPTIONS, providers

OUTPUTS = ("auto", "logits", "probs")
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_CLASS_OUTPUT_NAMES = ("logits", "probs", "probabilities", "output_probability", "scores")
_BATCH_STRINGS = 1024
_BATCH_TOKENS = 32
_SUM_TOLERANCE = 1e-3
_MAX_TOKENIZER_BYTES = 256 << 20


@dataclasses.dataclass
class UserModel:
    path: Path
    session: ort.InferenceSession
    kind: str  # 'strings' | 'transformer'
    classes: tuple[str, ...]
    class_output: str
    class_order: np.ndarray | None  # ZipMap: data class index -> key; None: columns are in the data's order
    embedding_output: str | None
    outputs: str  # what the class output holds: auto | logits | probs
    tokenizer: object | None  # tokenizers.Tokenizer for 'transformer'
    vocab_size: int  # the tokenizer's (0 for 'strings')
    columns: np.ndarray | None = None  # tensor outputs: for data class i, the output column holding it
    batch: int | None = None  # a fixed batch size the graph takes; None: any
    order_note: str | None = None  # how the class columns were matched, for the run's notes

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def score(self, texts: list[str], *, progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """((N, K) probabilities, (N, D) embedding or None) for ``texts``, in their order. Whether the outputs are
        logits or probabilities is decided once, over every text; any failure is a LoadError naming the text."""
        n = len(texts)
        order = np.argsort([len(t) for t in texts], kind="stable") if self.kind == "transformer" else np.arange(n)
        size = self.batch or (_BATCH_TOKENS if self.kind == "transformer" else _BATCH_STRINGS)
        raw, vectors = None, None
        with tqdm(total=n, desc="your model", unit="text", disable=not progress) as bar:
            for start in range(0, n, size):
                rows = order[start:start + size]
                block, embedded = self._run([texts[i] for i in rows], first=int(rows[0]) if len(rows) else 0)
                if raw is None:
                    raw = np.zeros((n, block.shape[1]))
                raw[rows] = block
                if embedded is not None:
                    if vectors is None:
                        vectors = np.zeros((n, embedded.shape[1]), dtype=np.float32)
                    vectors[rows] = embedded
                bar.update(len(rows))
        if vectors is not None and not np.isfinite(vectors).all():
            raise LoadError(f"{self.path}: its output {self.embedding_output!r} (the embedding) holds values that are "
                            "not finite numbers (NaN or infinity) for some texts.")
        return self._probabilities(np.zeros((0, len(self.classes))) if raw is None else raw), vectors

    def _run(self, texts: list[str], first: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """The class output as an (n, C) array (a ZipMap put in the data's class order) and the embedding, for one
        batch; ``first``: the index of its first text, for messages."""
        wanted = [self.class_output] + ([self.embedding_output] if self.embedding_output else [])
        n = len(texts)
        if self.batch and n < self.batch:  # a graph of fixed batch size: pad the last batch, drop the padding
            texts = texts + [""] * (self.batch - n)
        try:
            found = self.session.run(wanted, self._feed(texts))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # ONNX Runtime's errors, and the tokenizers library's panics (BaseException)
            raise LoadError(f"--model {self.path} failed on the texts from row {first} on "
                            f"({_first_line(exc)}).{self._hint()}") from None
        out = found[0]
        if isinstance(out, list):  # ZipMap: one {class key: probability} per row
            try:
                out = [[row[key] for key in self.class_order] for row in out]
            except (KeyError, TypeError):
                raise LoadError(f"--model {self.path}: its output {self.class_output!r} does not give every class for "
                                "every text.") from None
        values = np.asarray(out, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or len(values) != len(texts):
            raise LoadError(f"--model {self.path}: its output {self.class_output!r} has shape {list(values.shape)} for "
                            f"{len(texts)} texts; expected one row per text.")
        embedded = np.asarray(found[1], dtype=np.float32) if self.embedding_output else None
        if embedded is not None and (embedded.ndim != 2 or len(embedded) != len(texts)):
            embedded = None  # not one vector per text: no embedding
            self.embedding_output = None
        return values[:n], (embedded[:n] if embedded is not None else None)

    def _hint(self) -> str:
        return (f" The tokenizer may not be the model's (its ids run to {self.vocab_size - 1}), or the texts may be "
                "longer than the model takes: try a lower --max-tokens." if self.kind == "transformer" else "")

    def _feed(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.kind == "strings":
            node = self.session.get_inputs()[0]
            array = np.array(texts, dtype=object)
            return {node.name: array.reshape(-1, 1) if len(node.shape or []) == 2 else array}
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
        if "token_type_ids" in {i.name for i in self.session.get_inputs()}:
            feed["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
        return feed

    def _probabilities(self, values: np.ndarray) -> np.ndarray:
        """(N, K) probabilities in the data's class order from the class output of every text."""
        if not np.isfinite(values).all():
            raise LoadError(f"{self.path}: its output {self.class_output!r} holds values that are not finite numbers "
                            "(NaN or infinity) for some texts.")
        if values.shape[1] == 1 and len(self.classes) == 2:  # one column: P(class 1) or its logit
            p = values[:, 0] if self._holds_probabilities(np.column_stack([1 - values[:, 0], values[:, 0]])) \
                else 1.0 / (1.0 + np.exp(-values[:, 0]))
            return np.column_stack([1.0 - p, p])
        if values.shape[1] != len(self.classes):
            raise LoadError(f"{self.path}: its output {self.class_output!r} has {values.shape[1]} columns, but the "
                            f"data has {len(self.classes)} classes ({examples(self.classes)}).")
        if self.columns is not None:
            values = values[:, self.columns]
        if self._holds_probabilities(values):
            return values / values.sum(axis=1, keepdims=True)
        shifted = np.exp(values - values.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def _holds_probabilities(self, values: np.ndarray) -> bool:
        looks = bool(np.all((values >= 0) & (values <= 1)) and np.all(np.abs(values.sum(axis=1) - 1) <= _SUM_TOLERANCE))
        if self.outputs == "probs" and not looks:
            raise LoadError(f"{self.path}: --model-outputs probs was given, but {self.class_output!r} holds values "
                            "that are not probabilities (outside [0, 1] or not summing to 1); use --model-outputs logits.")
        if self.outputs == "logits" and looks and len(values) > 1:
            raise LoadError(f"{self.path}: --model-outputs logits was given, but every row of {self.class_output!r} "
                            "lies in [0, 1] and sums to 1: these are probabilities. Use --model-outputs probs (or "
                            "auto).")
        return self.outputs == "probs" or (self.outputs == "auto" and looks)


def open_model(path: Path, *, classes: tuple[str, ...], probe: list[str], tokenizer: Path | None = None,
               outputs: str = "auto", max_tokens: int = 512, device: str = "auto",
               model_classes: tuple[str, ...] | None = None) -> UserModel:
    """Open and check the user's model; see the module doc. ``probe``: texts scored once as a check."""
    if outputs not in OUTPUTS:
        raise ValueError(f"model outputs must be one of {', '.join(OUTPUTS)}; got {outputs!r}")
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"--model {path}: no such file. Pass the .onnx file of your classifier.")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a model that fails to load is said once, below
    chosen = [(p, CUDA_OPTIONS) if p == "CUDAExecutionProvider" else p for p in providers(device)]
    try:
        session = ort.InferenceSession(str(path), options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own classes for a file that is not a model
        if "construct locale" in str(exc):
            import re

            named = re.search(r"locale with name:\s*([^:\s]+)", str(exc))
            raise LoadError(f"--model {path} lowercases text in the locale {named.group(1) if named else '(unnamed)'}, "
                            "which this machine lacks. Install that locale, or convert the model again with "
                            "skl2onnx's option {TfidfVectorizer: {'locale': 'C.UTF-8'}}.") from None
        raise LoadError(f"--model {path} cannot be opened by ONNX Runtime ({_first_line(exc)}): it is not an ONNX "
                        "model, or it needs operators this ONNX Runtime lacks.") from None
    inputs = {i.name: i for i in session.get_inputs()}
    strings = [i for i in inputs.values() if i.type == "tensor(string)"]
    if len(inputs) == 1 and strings:
        if tokenizer is not None:
            raise LoadError(f"--model {path} takes the texts as strings and tokenizes them itself; --tokenizer goes "
                            "with a graph taking input_ids. Leave --tokenizer out.")
        model = _strings_model(path, session, classes, outputs, model_classes)
    elif "input_ids" in inputs:
        model = _transformer_model(path, session, classes, outputs, tokenizer, max_tokens, inputs, model_classes)
    else:
        raise LoadError(f"--model {path} takes {_describe(inputs.values())}; Lossmap reads graphs that take one string "
                        "tensor (the texts, e.g. a scikit-learn pipeline converted with skl2onnx) or input_ids and "
                        "attention_mask (and token_type_ids) from a tokenizer (a transformer).")
    model.score(sorted(probe, key=len)[-2:] or [""])  # a quick check on the longest texts before the whole data
    return model


def _strings_model(path, session, classes, outputs, model_classes) -> UserModel:
    outs = session.get_outputs()
    zipmap = [o for o in outs if o.type.startswith("seq(map(")]
    tensors = [o for o in outs if o.type in ("tensor(float)", "tensor(double)") and len(o.shape or []) == 2]
    chosen = _pick(tensors, len(classes)) if tensors else None
    if chosen is None and not zipmap:
        raise LoadError(f"--model {path} gives {_describe(outs)}; expected class probabilities: a float (N, "
                        f"{len(classes)}) output or a ZipMap (skl2onnx's output_probability).")
    if chosen is not None:
        return _with_columns(UserModel(path, session, "strings", classes, chosen.name, None, None, outputs, None, 0),
                             model_classes)
    model = UserModel(path, session, "strings", classes, zipmap[0].name, None, None, "probs", None, 0)
    try:
        row = session.run([zipmap[0].name], model._feed(["probe"]))[0][0]
    except Exception as exc:
        raise LoadError(f"--model {path} failed on a one-word text ({_first_line(exc)}): it does not take one string "
                        f"per text ({_describe(session.get_inputs())}).") from None
    model.class_order, model.order_note = _zipmap_order(path, list(row), classes, model_classes)
    return model


def _zipmap_order(path: Path, keys: list, classes: tuple[str, ...], model_classes) -> tuple[np.ndarray, str]:
    """For each data class, the ZipMap key holding its probability, and how they were matched."""
    if model_classes is not None:  # the model's classes in the order of its keys
        if len(model_classes) != len(keys):
            raise LoadError(f"--model-classes names {len(model_classes)} classes, but --model {path} has {len(keys)} "
                            f"({examples(sorted(map(str, keys)))}).")
        _check_same(path, model_classes, classes)
        by_name = dict(zip(model_classes, sorted(keys, key=lambda k: (str(type(k)), k))))
        return (np.array([by_name[c] for c in classes], dtype=object),
                f"--model classes by --model-classes: {', '.join(f'{k} = {c}' for c, k in by_name.items())}")
    by_name = {str(k): k for k in keys}
    if set(by_name) == set(classes):
        return np.array([by_name[c] for c in classes], dtype=object), "--model classes matched by name"
    if all(isinstance(k, (int, np.integer)) for k in keys):
        raise LoadError(f"--model {path} names its classes by number ({examples(sorted(keys))}), and the data's are "
                        f"{examples(classes)}: which is which cannot be told. Give the model's classes in the order of "
                        f"those numbers, e.g. --model-classes {','.join(classes)}.")
    raise LoadError(f"--model {path} names its classes {examples(sorted(by_name))}, but the data's classes are "
                    f"{examples(classes)}: train the model on the same labels, or give the data's labels as they "
                    "were when it was trained.")


def _with_columns(model: UserModel, model_classes) -> UserModel:
    """A tensor output's columns: by --model-classes, else in the data's class order (said in a note)."""
    if model_classes is None:
        model.order_note = (f"--model output {model.class_output!r} read in the data's class order "
                            f"({', '.join(model.classes)}); --model-classes gives the model's own order")
        return model
    if len(model_classes) != len(model.classes):
        raise LoadError(f"--model-classes names {len(model_classes)} classes, but the data has {len(model.classes)} "
                        f"({examples(model.classes)}).")
    _check_same(model.path, model_classes, model.classes)
    model.columns = np.array([list(model_classes).index(c) for c in model.classes])
    model.order_note = f"--model output columns by --model-classes: {', '.join(model_classes)}"
    return model


def _check_same(path: Path, model_classes, classes) -> None:
    if sorted(model_classes) != sorted(classes):
        raise LoadError(f"--model-classes {examples(model_classes)} are not the data's classes ({examples(classes)}).")


def _transformer_model(path, session, classes, outputs, tokenizer, max_tokens, inputs, model_classes) -> UserModel:
    unexpected = [i for i in inputs.values() if i.name not in TOKEN_INPUTS or i.type != "tensor(int64)"]
    if unexpected or "attention_mask" not in inputs:
        raise LoadError(f"--model {path} takes {_describe(inputs.values())}; a transformer graph must take input_ids "
                        "and attention_mask (and optionally token_type_ids), all int64, and nothing else.")
    if tokenizer is None:
        raise LoadError(f"--model {path} takes token ids (input_ids); pass the tokenizer it was trained with, "
                        "--tokenizer tokenizer.json (saved by the tokenizers library or a Hugging Face tokenizer).")
    from tokenizers import Tokenizer

    if not Path(tokenizer).is_file() or Path(tokenizer).stat().st_size > _MAX_TOKENIZER_BYTES:
        raise LoadError(f"--tokenizer {tokenizer} is not a tokenizer.json file (a regular file under "
                        f"{_MAX_TOKENIZER_BYTES >> 20} MiB).")
    try:
        tok = Tokenizer.from_file(str(tokenizer))
    except Exception as exc:
        raise LoadError(f"--tokenizer {tokenizer} cannot be read as a tokenizer.json ({_first_line(exc)}).") from None
    rows = _embedding_rows(path)
    if rows is not None and tok.get_vocab_size() > rows:
        raise LoadError(f"--tokenizer {tokenizer} has {tok.get_vocab_size():,} tokens, but the model's embedding table "
                        f"has {rows:,} rows: it is not the tokenizer this model was trained with.")
    batch, length = (inputs["input_ids"].shape + [None, None])[:2] if inputs["input_ids"].shape else (None, None)
    fixed = isinstance(length, int) and length > 0
    tok.enable_truncation(max_length=min(max_tokens, length) if fixed else max_tokens)
    pad = tok.token_to_id("[PAD]") if tok.token_to_id("[PAD]") is not None else tok.token_to_id("<pad>") or 0
    tok.enable_padding(pad_id=pad, length=length if fixed else None)
    outs = session.get_outputs()
    floats = [o for o in outs if o.type in ("tensor(float)", "tensor(double)") and len(o.shape or []) == 2]
    chosen = _pick(floats, len(classes))
    if chosen is None:
        raise LoadError(f"--model {path} gives {_describe(outs)}; expected a float (N, {len(classes)}) output of "
                        "logits or probabilities.")
    others = [o for o in floats if o.name != chosen.name]
    embedding = next((o for o in others if any(w in o.name.lower() for w in ("pool", "embed", "hidden"))),
                     others[0] if others else None)
    model = UserModel(path, session, "transformer", classes, chosen.name, None,
                      embedding.name if embedding is not None else None, outputs, tok, tok.get_vocab_size(),
                      batch=batch if isinstance(batch, int) and batch > 0 else None)
    return _with_columns(model, model_classes)


def _pick(outputs, k: int):
    """The class output: named like logits/probs, else the first whose width is K (or unknown)."""
    fits = [o for o in outputs if o.shape[-1] in (k, None) or isinstance(o.shape[-1], str)
            or (k == 2 and o.shape[-1] == 1)]
    named = [o for o in fits if o.name.lower() in _CLASS_OUTPUT_NAMES]
    return (named or fits or [None])[0]


def _embedding_rows(path: Path) -> int | None:
    """Rows of the table input_ids index (the Gather fed by input_ids), when the graph shows it."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:
        return None
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == "input_ids":
            dims = shapes.get(node.input[0])
            if dims:
                return int(dims[0])
    return None


def _describe(nodes) -> str:
    return ", ".join(f"{n.name} ({n.type}, shape {list(n.shape) if n.shape is not None else '?'})" for n in nodes)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
