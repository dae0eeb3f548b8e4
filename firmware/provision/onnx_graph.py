"""A small helper for writing ONNX graphs node by node from numpy weights.

Only the converter imports this module; ``onnx`` is imported lazily inside it so that
``import firmware.provision`` stays free of build-time dependencies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

OPSET = 17
# IR 8 is read by every onnxruntime sherpa-onnx has shipped with since opset 17 appeared.
IR_VERSION = 8
_NEG_LARGE = -1e9  # added to masked attention scores; finite so softmax never sees inf - inf


class GraphBuilder:
    """Collects nodes and initializers; every helper returns the name of its output."""

    def __init__(self) -> None:
        import onnx  # noqa: F401  (fail early with ImportError if the build extra is missing)

        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._counter = 0

    def _name(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}"

    def const(self, value: np.ndarray | float | int | list[int], hint: str = "c") -> str:
        from onnx import numpy_helper

        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(array.copy(order="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs: Any) -> Any:
        from onnx import helper

        outputs = [self._name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, domain=domain or None, **attrs))
        return outputs[0] if n_out == 1 else outputs

    def named(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        """Like :meth:`op` but with a fixed output name (graph outputs)."""
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output

    # --- layers -------------------------------------------------------------------------

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None, hint: str) -> str:
        # Weight stored [out, in] as in PyTorch/CTranslate2; MatMul wants [in, out]. MatMul with
        # an initializer is what onnxruntime's dynamic quantizer turns into int8.
        y = self.op("MatMul", [x, self.const(weight.T, hint + "_w")])
        if bias is not None and np.any(bias):
            y = self.op("Add", [y, self.const(bias, hint + "_b")])
        return y

    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, hint: str) -> str:
        return self.op(
            "LayerNormalization", [x, self.const(gamma, hint + "_g"), self.const(beta, hint + "_b")], axis=-1, epsilon=1e-5
        )

    def gelu(self, x: str) -> str:
        # Exact (erf) GELU as Whisper uses; onnxruntime fuses this pattern into one Gelu kernel.
        scaled = self.op("Mul", [x, self.const(np.float32(1.0 / math.sqrt(2.0)))])
        erf = self.op("Erf", [scaled])
        one_plus = self.op("Add", [erf, self.const(np.float32(1.0))])
        half_x = self.op("Mul", [x, self.const(np.float32(0.5))])
        return self.op("Mul", [half_x, one_plus])

    def split_heads(self, x: str, n_heads: int, head_dim: int) -> str:
        """[N, T, H*D] -> [N, H, T, D]."""
        shaped = self.op("Reshape", [x, self.const(np.array([0, 0, n_heads, head_dim], dtype=np.int64))])
        return self.op("Transpose", [shaped], perm=[0, 2, 1, 3])

    def merge_heads(self, x: str, width: int) -> str:
        """[N, H, T, D] -> [N, T, H*D]."""
        back = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [back, self.const(np.array([0, 0, width], dtype=np.int64))])

    def attention(self, q: str, k: str, v: str, n_heads: int, width: int, mask: str | None = None) -> str:
        """Scaled dot-product attention over [N, T, width] tensors; ``mask`` is additive [Tq, Tk]."""
        head_dim = width // n_heads
        qh = self.split_heads(q, n_heads, head_dim)
        qh = self.op("Mul", [qh, self.const(np.float32(1.0 / math.sqrt(head_dim)))])
        kt = self.op("Transpose", [self.split_heads(k, n_heads, head_dim)], perm=[0, 1, 3, 2])
        scores = self.op("MatMul", [qh, kt])
        if mask is not None:
            scores = self.op("Add", [scores, mask])
        weights = self.op("Softmax", [scores], axis=-1)
        return self.merge_heads(self.op("MatMul", [weights, self.split_heads(v, n_heads, head_dim)]), width)

    def split_last(self, x: str, sizes: list[int]) -> list[str]:
        return list(self.op("Split", [x, self.const(np.array(sizes, dtype=np.int64))], n_out=len(sizes), axis=-1))

    def scalar_i64(self, value: int) -> str:
        return self.const(np.array(value, dtype=np.int64))

    def vec_i64(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def causal_mask(self, offset: str, n_new: str) -> str:
        """Additive mask [n_new, offset + n_new]: query i (absolute offset+i) sees keys <= offset+i."""
        offset_s = self.op("Squeeze", [offset, self.vec_i64(0)])
        n_new_s = self.op("Squeeze", [n_new, self.vec_i64(0)])
        total = self.op("Add", [offset_s, n_new_s])
        one = self.scalar_i64(1)
        key_pos = self.op("Range", [self.scalar_i64(0), total, one])
        query_pos = self.op("Unsqueeze", [self.op("Range", [offset_s, total, one]), self.vec_i64(1)])
        future = self.op("Greater", [self.op("Unsqueeze", [key_pos, self.vec_i64(0)]), query_pos])
        return self.op("Where", [future, self.const(np.float32(_NEG_LARGE)), self.const(np.float32(0.0))])

    def model(self, inputs: list[Any], outputs: list[Any], name: str) -> Any:
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="parallax-provision"
        )
        model.ir_version = IR_VERSION
        return model
