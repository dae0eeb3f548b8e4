"""Whisper encoder/decoder ONNX graphs in the interface sherpa-onnx's whisper recognizer runs.

Encoder: ``mel`` [N, n_mels, T] -> ``n_layer_cross_k``, ``n_layer_cross_v`` [n_text_layer, N, T/2, d].
T is whatever sherpa-onnx feeds (utterance + tail padding, at most 3000 frames), so the stored
sinusoidal position table is sliced to the convolved length instead of requiring 30 s.

Decoder: ``tokens`` [N, n], ``in_n_layer_self_{k,v}_cache`` [L, N, n_text_ctx, d] (fixed size),
``n_layer_cross_{k,v}``, ``offset`` int64 [1] -> ``logits`` [N, n, vocab] and the updated caches.
The first call carries several tokens (start-of-transcript ... no-timestamps), so the causal mask
covers more than one query.

Whisper's token suppression is a constant bias on ``logits`` (see
:meth:`WhisperVocabulary.suppressed_tokens`), since sherpa-onnx takes their plain argmax.

The tied output projection is stored once, as int8 with one scale per token: the logits use it via
MatMulInteger and the token embedding gathers (and rescales) only the rows it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware.errors import ProvisioningError
from firmware.provision.ct2 import Ct2Model
from firmware.provision.onnx_graph import GraphBuilder

_GELU = 3  # CTranslate2 ActivationType::GELU (erf form)


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


def whisper_dims(model: Ct2Model) -> WhisperDims:
    """Read the architecture from variable shapes and check the flags this converter assumes."""
    if model.spec != "WhisperSpec":
        raise ProvisioningError(f"expected a CTranslate2 WhisperSpec model, found {model.spec!r}")
    expected_flags = {"decoder/pre_norm": 1, "decoder/scale_embeddings": 0, "decoder/activation": _GELU}
    for flag, wanted in expected_flags.items():
        if flag in model and int(model[flag]) != wanted:
            raise ProvisioningError(f"unsupported Whisper variant: {flag} = {int(model[flag])}, converter expects {wanted}")
    conv1 = model["encoder/conv1/weight"]
    embeddings = model["decoder/embeddings/weight"]
    return WhisperDims(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(model["encoder/position_encodings/encodings"].shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=int(model["encoder/num_heads"]),
        n_audio_layer=model.count_layers("encoder"),
        n_vocab=int(embeddings.shape[0]),
        n_text_ctx=int(model["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(embeddings.shape[1]),
        n_text_head=int(model["decoder/num_heads"]),
        n_text_layer=model.count_layers("decoder"),
    )


def _ffn(g: GraphBuilder, m: Ct2Model, x: str, prefix: str) -> str:
    h = g.layer_norm(x, m[f"{prefix}/layer_norm/gamma"], m[f"{prefix}/layer_norm/beta"], prefix)
    h = g.gelu(g.linear(h, m[f"{prefix}/linear_0/weight"], m[f"{prefix}/linear_0/bias"], prefix + "_fc1"))
    return g.op("Add", [x, g.linear(h, m[f"{prefix}/linear_1/weight"], m[f"{prefix}/linear_1/bias"], prefix + "_fc2")])


def build_encoder(m: Ct2Model, dims: WhisperDims) -> Any:
    from onnx import TensorProto, helper

    g = GraphBuilder()
    d = dims.n_audio_state
    x = g.op("Conv", ["mel", g.const(m["encoder/conv1/weight"]), g.const(m["encoder/conv1/bias"])], kernel_shape=[3], pads=[1, 1])
    x = g.gelu(x)
    x = g.op(
        "Conv", [x, g.const(m["encoder/conv2/weight"]), g.const(m["encoder/conv2/bias"])], kernel_shape=[3], pads=[1, 1], strides=[2]
    )
    x = g.op("Transpose", [g.gelu(x)], perm=[0, 2, 1])  # [N, T', d]
    length = g.op("Shape", [x], start=1, end=2)
    positions = g.op("Slice", [g.const(m["encoder/position_encodings/encodings"], "enc_pos"), g.vec_i64(0), length, g.vec_i64(0)])
    x = g.op("Add", [x, positions])
    for i in range(dims.n_audio_layer):
        p = f"encoder/layer_{i}"
        h = g.layer_norm(x, m[f"{p}/self_attention/layer_norm/gamma"], m[f"{p}/self_attention/layer_norm/beta"], p + "_ln1")
        qkv = g.linear(h, m[f"{p}/self_attention/linear_0/weight"], m[f"{p}/self_attention/linear_0/bias"], p + "_qkv")
        q, k, v = g.split_last(qkv, [d, d, d])
        att = g.attention(q, k, v, dims.n_audio_head, d)
        x = g.op("Add", [x, g.linear(att, m[f"{p}/self_attention/linear_1/weight"], m[f"{p}/self_attention/linear_1/bias"], p + "_o")])
        x = _ffn(g, m, x, f"{p}/ffn")
    x = g.layer_norm(x, m["encoder/layer_norm/gamma"], m["encoder/layer_norm/beta"], "enc_ln")

    # Cross-attention keys/values are computed once here, not on every decoder step.
    ks, vs = [], []
    dt = dims.n_text_state
    for i in range(dims.n_text_layer):
        p = f"decoder/layer_{i}/attention/linear_1"
        kv = g.linear(x, m[f"{p}/weight"], m[f"{p}/bias"], f"cross{i}_kv")
        k, v = g.split_last(kv, [dt, dt])
        ks.append(g.op("Unsqueeze", [k, g.vec_i64(0)]))
        vs.append(g.op("Unsqueeze", [v, g.vec_i64(0)]))
    g.named("Concat", ks, "n_layer_cross_k", axis=0)
    g.named("Concat", vs, "n_layer_cross_v", axis=0)

    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("mel", f32, ["n_audio", dims.n_mels, "T"])]
    outputs = [
        helper.make_tensor_value_info(name, f32, [dims.n_text_layer, "n_audio", "T2", dt])
        for name in ("n_layer_cross_k", "n_layer_cross_v")
    ]
    return g.model(inputs, outputs, "whisper_encoder")


def _quantized_embedding(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per token: returns (transposed int8 [d, vocab], float32 scale [vocab])."""
    scale = np.abs(weight).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(q.T), scale


SUPPRESSED_LOGIT = -1e9  # finite: greedy argmax never picks it, and arithmetic on logits stays NaN-free


def build_decoder(m: Ct2Model, dims: WhisperDims, suppress: Sequence[int] = ()) -> Any:
    from onnx import TensorProto, helper

    g = GraphBuilder()
    d = dims.n_text_state
    # Whisper ties the output projection to the token embedding (CT2 aliases them).
    if "decoder/projection/weight" in m and not np.array_equal(m["decoder/projection/weight"], m["decoder/embeddings/weight"]):
        raise ProvisioningError("unsupported Whisper variant: output projection is not tied to the embedding")
    table_q, table_scale = _quantized_embedding(m["decoder/embeddings/weight"])
    table = g.const(table_q, "emb_int8_t")
    scales = g.const(table_scale, "emb_scale")

    rows = g.op("Cast", [g.op("Gather", [table, "tokens"], axis=1)], to=TensorProto.FLOAT)  # [d, N, n]
    embedded = g.op("Mul", [g.op("Transpose", [rows], perm=[1, 2, 0]), g.op("Unsqueeze", [g.op("Gather", [scales, "tokens"]), g.vec_i64(-1)])])
    n_new = g.op("Shape", ["tokens"], start=1, end=2)
    end = g.op("Add", ["offset", n_new])
    positions = g.op("Slice", [g.const(m["decoder/position_encodings/encodings"], "dec_pos"), "offset", end, g.vec_i64(0)])
    x = g.op("Add", [embedded, positions])
    mask = g.causal_mask("offset", n_new)
    big = g.vec_i64(2**62)

    new_k, new_v = [], []
    for i in range(dims.n_text_layer):
        p = f"decoder/layer_{i}"
        h = g.layer_norm(x, m[f"{p}/self_attention/layer_norm/gamma"], m[f"{p}/self_attention/layer_norm/beta"], p + "_ln1")
        qkv = g.linear(h, m[f"{p}/self_attention/linear_0/weight"], m[f"{p}/self_attention/linear_0/bias"], p + "_qkv")
        q, k, v = g.split_last(qkv, [d, d, d])
        keys_values = []
        for cache_name, fresh, sink in (("in_n_layer_self_k_cache", k, new_k), ("in_n_layer_self_v_cache", v, new_v)):
            cache = g.op("Gather", [cache_name, g.scalar_i64(i)], axis=0)  # [N, n_text_ctx, d]
            before = g.op("Slice", [cache, g.vec_i64(0), "offset", g.vec_i64(1)])
            after = g.op("Slice", [cache, end, big, g.vec_i64(1)])
            updated = g.op("Concat", [before, fresh, after], axis=1)
            sink.append(g.op("Unsqueeze", [updated, g.vec_i64(0)]))
            keys_values.append(g.op("Slice", [updated, g.vec_i64(0), end, g.vec_i64(1)]))
        att = g.attention(q, keys_values[0], keys_values[1], dims.n_text_head, d, mask)
        x = g.op("Add", [x, g.linear(att, m[f"{p}/self_attention/linear_1/weight"], m[f"{p}/self_attention/linear_1/bias"], p + "_o")])

        h = g.layer_norm(x, m[f"{p}/attention/layer_norm/gamma"], m[f"{p}/attention/layer_norm/beta"], p + "_ln2")
        q = g.linear(h, m[f"{p}/attention/linear_0/weight"], m[f"{p}/attention/linear_0/bias"], p + "_xq")
        cross_k = g.op("Gather", ["n_layer_cross_k", g.scalar_i64(i)], axis=0)
        cross_v = g.op("Gather", ["n_layer_cross_v", g.scalar_i64(i)], axis=0)
        att = g.attention(q, cross_k, cross_v, dims.n_text_head, d)
        x = g.op("Add", [x, g.linear(att, m[f"{p}/attention/linear_2/weight"], m[f"{p}/attention/linear_2/bias"], p + "_xo")])
        x = _ffn(g, m, x, f"{p}/ffn")
    x = g.layer_norm(x, m["decoder/layer_norm/gamma"], m["decoder/layer_norm/beta"], "dec_ln")

    # logits = x @ E^T with E in int8: quantize activations per call, integer matmul, rescale.
    x_q, x_scale, x_zero = g.op("DynamicQuantizeLinear", [x], n_out=3)
    product = g.op("MatMulInteger", [x_q, table, x_zero, g.const(np.int8(0), "emb_zero")])
    scaled = g.op("Mul", [g.op("Cast", [product], to=TensorProto.FLOAT), x_scale])
    if not suppress:
        g.named("Mul", [scaled, scales], "logits")
    else:
        if any(not 0 <= t < dims.n_vocab for t in suppress):
            raise ProvisioningError(f"token suppression names ids outside the vocabulary of {dims.n_vocab}")
        bias = np.zeros(dims.n_vocab, np.float32)
        bias[list(suppress)] = SUPPRESSED_LOGIT
        g.named("Add", [g.op("Mul", [scaled, scales]), g.const(bias, "suppress_bias")], "logits")
    g.named("Concat", new_k, "out_n_layer_self_k_cache", axis=0)
    g.named("Concat", new_v, "out_n_layer_self_v_cache", axis=0)

    f32 = TensorProto.FLOAT
    cache_shape = [dims.n_text_layer, "n_audio", dims.n_text_ctx, d]
    cross_shape = [dims.n_text_layer, "n_audio", "T2", d]
    inputs = [
        helper.make_tensor_value_info("tokens", TensorProto.INT64, ["n_audio", "n_tokens"]),
        helper.make_tensor_value_info("in_n_layer_self_k_cache", f32, cache_shape),
        helper.make_tensor_value_info("in_n_layer_self_v_cache", f32, cache_shape),
        helper.make_tensor_value_info("n_layer_cross_k", f32, cross_shape),
        helper.make_tensor_value_info("n_layer_cross_v", f32, cross_shape),
        helper.make_tensor_value_info("offset", TensorProto.INT64, [1]),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", f32, ["n_audio", "n_tokens", dims.n_vocab]),
        helper.make_tensor_value_info("out_n_layer_self_k_cache", f32, cache_shape),
        helper.make_tensor_value_info("out_n_layer_self_v_cache", f32, cache_shape),
    ]
    return g.model(inputs, outputs, "whisper_decoder")
