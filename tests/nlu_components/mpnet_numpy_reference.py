"""The test oracle: a plain NumPy forward pass of all-mpnet-base-v2, as transformers' MPNetModel.

It once served the assistant (about 100 ms a message); now it only checks that the ONNX graph
built at set-up computes the same thing. It is itself checked against transformers' scores.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
from scipy.special import erf

from nlu_components.encoder_graph import relative_position_buckets
from nlu_components.mpnet_weights import EMBEDDING_DIM, PAD_ID

_LINEAR_MAPS = {
    "q": "attention.attn.q",
    "k": "attention.attn.k",
    "v": "attention.attn.v",
    "out": "attention.attn.o",
    "up": "intermediate.dense",
    "down": "output.dense",
}
_LAYER_NORMS = {"ln1": "attention.LayerNorm", "ln2": "output.LayerNorm"}


def prepare_weights(raw: Dict[str, np.ndarray], config: Dict[str, Any]) -> Dict[str, Any]:
    layers = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        layer = {}
        for short, name in _LINEAR_MAPS.items():
            layer[f"{short}_w"] = raw[f"{p}{name}.weight"].T
            layer[f"{short}_b"] = raw[f"{p}{name}.bias"]
        for short, name in _LAYER_NORMS.items():
            layer[f"{short}_g"] = raw[f"{p}{name}.weight"]
            layer[f"{short}_b"] = raw[f"{p}{name}.bias"]
        layers.append(layer)
    return {
        "word": raw["embeddings.word_embeddings.weight"],
        "position": raw["embeddings.position_embeddings.weight"],
        "ln_g": raw["embeddings.LayerNorm.weight"],
        "ln_b": raw["embeddings.LayerNorm.bias"],
        "relative_bias": raw["encoder.relative_attention_bias.weight"],
        "layers": layers,
        "heads": config["num_attention_heads"],
        "buckets": config["relative_attention_num_buckets"],
        "eps": float(config["layer_norm_eps"]),
    }


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    return np.float32(0.5) * x * (np.float32(1.0) + erf(x * np.float32(1 / np.sqrt(2.0))))


def forward(w: Dict[str, Any], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(batch, length) ids and 0/1 mask to (batch, length, 768) last hidden states."""
    batch, length = ids.shape
    heads = w["heads"]
    head_dim = EMBEDDING_DIM // heads
    eps = w["eps"]

    positions = np.cumsum(ids != PAD_ID, axis=1) * (ids != PAD_ID) + PAD_ID
    x = w["word"][ids] + w["position"][positions]
    x = _layer_norm(x, w["ln_g"], w["ln_b"], eps).reshape(batch * length, EMBEDDING_DIM)
    position_bias = w["relative_bias"][relative_position_buckets(length, w["buckets"])]
    score_bias = (
        position_bias.transpose(2, 0, 1)[None] + ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
    )
    scale = np.float32(1.0 / np.sqrt(head_dim))

    for layer in w["layers"]:
        q, k, v = (
            (x @ layer[f"{n}_w"] + layer[f"{n}_b"])
            .reshape(batch, length, heads, head_dim)
            .transpose(0, 2, 1, 3)
            for n in "qkv"
        )
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale + score_bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, EMBEDDING_DIM)

        attn = context @ layer["out_w"] + layer["out_b"]
        x = _layer_norm(attn + x, layer["ln1_g"], layer["ln1_b"], eps)
        up = _gelu(x @ layer["up_w"] + layer["up_b"])
        x = _layer_norm(
            up @ layer["down_w"] + layer["down_b"] + x, layer["ln2_g"], layer["ln2_b"], eps
        )

    return x.reshape(batch, length, EMBEDDING_DIM)
