"""Builds the all-mpnet-base-v2 ONNX graph from the hash-checked weights, without torch.

Run at set-up (`make setup`: `python -m nlu_components.encoder_graph`), never at serve time. It
writes the int8 graph and a manifest (the graph's SHA-256, the weights' SHA-256 and this
builder's own SHA-256) into models/onnx/, which is git-ignored; the featurizer refuses a graph
whose bytes or builder do not match its manifest. The graph takes token ids and returns the last
hidden states; tokenizing and pooling stay in Python, where Rasa's tokens need the wordpieces.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from nlu_components.mpnet_weights import EMBEDDING_DIM, PAD_ID, WEIGHTS_SHA256, read_model

REPO_ROOT = Path(__file__).resolve().parent.parent
GRAPH_DIR = REPO_ROOT / "models" / "onnx"
GRAPH_NAME = "all-mpnet-base-v2.int8.onnx"
MANIFEST_NAME = "manifest.json"
# LayerNormalization is an operator from opset 17 on; ONNX Runtime 1.23 runs up to 23.
OPSET = 17
# The position table has 514 rows: PAD_ID + 1 + 512 positions.
MAX_TOKENS = 512
# Weights per quantization scale: 128 was as fast as 256 and closer to fp32 (64: slower).
QUANT_BLOCK = 128
# Softmax weight of a padded key: exp(-1e9) is 0 in float32, as in the reference.
MASKED_SCORE = -1e9


def offset_buckets(offset: np.ndarray, buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """MPNet's (T5-style) bucket of a key-minus-query offset: exact near, log-spaced far."""
    half = buckets // 2
    result = (offset > 0).astype(np.int64) * half
    distance = np.abs(offset)
    exact = half // 2
    far = exact + (
        np.log(np.maximum(distance, 1) / exact) / math.log(max_distance / exact) * (half - exact)
    ).astype(np.int64)
    return result + np.where(distance < exact, distance, np.minimum(far, half - 1))


def relative_position_buckets(length: int, buckets: int = 32) -> np.ndarray:
    """The bucket of each key (column) seen from each query (row) of a text."""
    return offset_buckets(np.arange(length)[None, :] - np.arange(length)[:, None], buckets)


def offset_bias_table(relative_bias: np.ndarray, buckets: int) -> np.ndarray:
    """Each head's attention bias for every offset from -511 to 511, at row ``offset + 511``.

    The bias depends on the offset only, so this (1023, heads) table replaces the bucket
    arithmetic in the graph.
    """
    offsets = np.arange(-(MAX_TOKENS - 1), MAX_TOKENS)
    return relative_bias[offset_buckets(offsets, buckets)].astype(np.float32)


class GraphWriter:
    """Adds named nodes and weights to one ONNX graph: the builder reads like the forward pass."""

    def __init__(self) -> None:
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self._count = 0

    def weight(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, name: str | None = None, **attributes: Any) -> str:
        """Adds a node; its output is named after the node (named nodes can be told apart)."""
        from onnx import helper

        self._count += 1
        output = name or f"{op_type.lower()}_{self._count}"
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [output], name=output, **attributes)
        )
        return output

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        # MatMul with a constant right-hand side, named after the layer: what gets quantized.
        product = self.op("MatMul", x, self.weight(f"{name}.weight_t", weight.T), name=name)
        return self.op("Add", product, self.weight(f"{name}.bias", bias))

    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float, name: str) -> str:
        return self.op(
            "LayerNormalization",
            x,
            self.weight(f"{name}.weight", gamma),
            self.weight(f"{name}.bias", beta),
            axis=-1,
            epsilon=eps,
        )


def _embeddings(g: GraphWriter, raw: Dict[str, np.ndarray], eps: float) -> str:
    """Word plus position embeddings, positions counted from PAD_ID + 1 over non-padding ids."""
    pad = g.weight("pad_id", np.array(PAD_ID, dtype=np.int64))
    real = g.op("Cast", g.op("Not", g.op("Equal", "input_ids", pad)), to=7)  # int64
    counted = g.op("CumSum", real, g.weight("axis_1", np.array(1, dtype=np.int64)))
    positions = g.op("Add", g.op("Mul", counted, real), pad)
    words = g.op(
        "Gather", g.weight("word_embeddings", raw["embeddings.word_embeddings.weight"]), "input_ids"
    )
    places = g.op(
        "Gather",
        g.weight("position_embeddings", raw["embeddings.position_embeddings.weight"]),
        positions,
    )
    return g.layer_norm(
        g.op("Add", words, places),
        raw["embeddings.LayerNorm.weight"],
        raw["embeddings.LayerNorm.bias"],
        eps,
        "embeddings.LayerNorm",
    )


def _score_bias(g: GraphWriter, raw: Dict[str, np.ndarray], buckets: int) -> str:
    """(batch, heads, length, length): relative position bias plus -1e9 on padded keys."""
    table = offset_bias_table(raw["encoder.relative_attention_bias.weight"], buckets)
    length = g.op("Squeeze", g.op("Shape", "input_ids", start=1, end=2))
    steps = g.op(
        "Range",
        g.weight("zero", np.array(0, dtype=np.int64)),
        length,
        g.weight("one", np.array(1, dtype=np.int64)),
    )
    keys = g.op("Unsqueeze", steps, g.weight("axes_0", np.array([0], dtype=np.int64)))
    queries = g.op("Unsqueeze", steps, g.weight("axes_1", np.array([1], dtype=np.int64)))
    row = g.op(
        "Add",
        g.op("Sub", keys, queries),
        g.weight("max_offset", np.array(MAX_TOKENS - 1, dtype=np.int64)),
    )
    position_bias = g.op(
        "Unsqueeze",
        g.op("Transpose", g.op("Gather", g.weight("offset_bias", table), row), perm=[2, 0, 1]),
        g.weight("axes_0b", np.array([0], dtype=np.int64)),
    )
    pad = g.weight("pad_id_f", np.array(PAD_ID, dtype=np.int64))
    padded = g.op("Cast", g.op("Equal", "input_ids", pad), to=1)  # float
    key_bias = g.op(
        "Unsqueeze",
        g.op("Mul", padded, g.weight("masked_score", np.array(MASKED_SCORE, dtype=np.float32))),
        g.weight("axes_12", np.array([1, 2], dtype=np.int64)),
    )
    return g.op("Add", position_bias, key_bias)


def _layer(
    g: GraphWriter, x: str, raw: Dict[str, np.ndarray], index: int, bias: str, config: Dict
) -> str:
    """One transformer layer: self-attention with the shared position bias, then the MLP."""
    p = f"encoder.layer.{index}."
    heads = config["num_attention_heads"]
    head_dim = EMBEDDING_DIM // heads
    eps = float(config["layer_norm_eps"])
    split = g.weight(f"{p}split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    joined = g.weight(f"{p}join_heads", np.array([0, 0, EMBEDDING_DIM], dtype=np.int64))

    def projection(short: str) -> str:
        name = f"{p}attention.attn.{short}"
        return g.op(
            "Reshape",
            g.linear(x, raw[f"{name}.weight"], raw[f"{name}.bias"], name),
            split,
        )

    q = g.op("Transpose", projection("q"), perm=[0, 2, 1, 3])
    k = g.op("Transpose", projection("k"), perm=[0, 2, 3, 1])
    v = g.op("Transpose", projection("v"), perm=[0, 2, 1, 3])
    scale = g.weight(f"{p}scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
    context = g.op(
        "Reshape",
        g.op("Transpose", g.op("MatMul", g.op("Softmax", scores, axis=-1), v), perm=[0, 2, 1, 3]),
        joined,
    )
    out = f"{p}attention.attn.o"
    attended = g.linear(context, raw[f"{out}.weight"], raw[f"{out}.bias"], out)
    x = g.layer_norm(
        g.op("Add", attended, x),
        raw[f"{p}attention.LayerNorm.weight"],
        raw[f"{p}attention.LayerNorm.bias"],
        eps,
        f"{p}attention.LayerNorm",
    )
    up = f"{p}intermediate.dense"
    hidden = _gelu(g, g.linear(x, raw[f"{up}.weight"], raw[f"{up}.bias"], up), p)
    down = f"{p}output.dense"
    return g.layer_norm(
        g.op("Add", g.linear(hidden, raw[f"{down}.weight"], raw[f"{down}.bias"], down), x),
        raw[f"{p}output.LayerNorm.weight"],
        raw[f"{p}output.LayerNorm.bias"],
        eps,
        f"{p}output.LayerNorm",
    )


def _gelu(g: GraphWriter, x: str, prefix: str) -> str:
    """The exact erf form, as the model was trained with (ONNX Runtime fuses it into one op)."""
    inner = g.op(
        "Erf", g.op("Mul", x, g.weight(f"{prefix}gelu.c", np.array(1 / math.sqrt(2), np.float32)))
    )
    half = g.weight(f"{prefix}gelu.half", np.array(0.5, np.float32))
    one = g.weight(f"{prefix}gelu.one", np.array(1.0, np.float32))
    return g.op("Mul", g.op("Mul", x, half), g.op("Add", inner, one))


def build_graph(raw: Dict[str, np.ndarray], config: Dict[str, Any]) -> Any:
    """The fp32 graph: input_ids (batch, length) int64 -> last_hidden_state (batch, length, 768)."""
    from onnx import TensorProto, checker, helper

    g = GraphWriter()
    x = _embeddings(g, raw, float(config["layer_norm_eps"]))
    bias = _score_bias(g, raw, config["relative_attention_num_buckets"])
    for index in range(config["num_hidden_layers"]):
        x = _layer(g, x, raw, index, bias, config)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        g.nodes,
        "all-mpnet-base-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"])],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "length", EMBEDDING_DIM]
            )
        ],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every ONNX Runtime that has opset 17
    checker.check_model(model)
    return model


def quantize(fp32_model: Any, output: Path) -> None:
    """int8 weights in blocks of 128, each with its own scale; int8 products at accuracy level 4.

    Not ``quantize_dynamic``: it quantizes a whole activation tensor with one scale, and in this
    model the <s> and </s> tokens carry activations of 60-100 where the other tokens stay within
    1-4 (layers 6-10), so every other token lost its resolution: cosine similarity to the fp32
    embeddings fell to 0.45 on some training sentences (0.86 on average). MatMulNBits quantizes
    activations per token and block instead, and keeps every training sentence above 0.99.
    """
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    # The quantizer logs every product it visits at INFO.
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    settings = {"block_size": QUANT_BLOCK, "is_symmetric": True, "accuracy_level": 4}
    quantizer = MatMulNBitsQuantizer(
        fp32_model, **settings, algo_config=DefaultWeightOnlyQuantConfig(**settings, bits=8)
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(output))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def builder_sha256() -> str:
    """This file's own hash: a graph built by another version of the builder is stale."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def build(directory: Path = GRAPH_DIR) -> Path:
    """Reads and checks the weights, writes the int8 graph and its manifest; returns the graph."""
    raw, config = read_model()
    fp32 = build_graph(raw, config)
    del raw
    directory.mkdir(parents=True, exist_ok=True)
    graph = directory / GRAPH_NAME
    # Written under a temporary name and renamed: a half-written graph is never loaded.
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        partial = Path(scratch) / GRAPH_NAME
        quantize(fp32, partial)
        partial.replace(graph)
    manifest = {
        "graph": GRAPH_NAME,
        "graph_sha256": sha256_of(graph),
        "weights_sha256": WEIGHTS_SHA256,
        "builder_sha256": builder_sha256(),
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GRAPH_DIR, help="folder for graph and manifest")
    args = parser.parse_args()
    graph = build(args.out)
    print(f"Wrote {graph} ({graph.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
