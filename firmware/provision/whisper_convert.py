"""CTranslate2 Whisper -> int8 ONNX encoder/decoder + tokens file for sherpa-onnx.

Heavy imports (onnx, onnxruntime) happen inside :func:`convert_whisper` only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware.errors import ProvisioningError
from firmware.provision.ct2 import parse_ct2
from firmware.provision.whisper_graph import build_decoder, build_encoder, whisper_dims
from firmware.provision.whisper_vocab import WhisperVocabulary

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime's quantizer logs advice through the root logger; it is noise for this graph."""

    def drop(record: logging.LogRecord) -> bool:
        return record.name != "root" or record.levelno > logging.WARNING

    root = logging.getLogger()
    root.addFilter(drop)
    for handler in root.handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        for handler in root.handlers:
            handler.removeFilter(drop)


@dataclass(frozen=True)
class WhisperOutputs:
    encoder: Path
    decoder: Path
    tokens: Path


def convert_whisper(
    model_bin: bytes,
    vocabulary: Sequence[str],
    suppress_ids: Sequence[int],
    out_dir: Path,
    model_type: str,
    language: str,
    origin: str = "model.bin",
    report: Callable[[str], None] = lambda message: None,
) -> WhisperOutputs:
    """Write ``encoder.int8.onnx``, ``decoder.int8.onnx`` and ``tokens.txt`` into ``out_dir``."""
    try:
        import onnx

        from firmware.speech.ort import import_onnxruntime

        import_onnxruntime()  # telemetry off before onnxruntime.quantization loads it
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ProvisioningError(f"model conversion needs the build extra (pip install -e '.[build]'): {exc}") from None

    model = parse_ct2(model_bin, origin)
    dims = whisper_dims(model)
    vocab = WhisperVocabulary(list(vocabulary))
    metadata = vocab.metadata(dims, model_type, language, suppress_ids)
    decoder = functools.partial(build_decoder, suppress=vocab.suppressed_tokens(suppress_ids))
    tokens_text = vocab.tokens_file()
    log.info("whisper dims: %s", dims)

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = WhisperOutputs(out_dir / "encoder.int8.onnx", out_dir / "decoder.int8.onnx", out_dir / "tokens.txt")
    with tempfile.TemporaryDirectory(prefix="whisper-fp32-", dir=out_dir) as scratch:
        for build, target, meta in ((build_encoder, outputs.encoder, metadata), (decoder, outputs.decoder, {})):
            report(f"{target.name}: building the float graph and quantizing to int8 ...")
            graph = build(model, dims)
            try:
                onnx.checker.check_model(graph)
            except onnx.checker.ValidationError as exc:
                raise ProvisioningError(f"generated {target.name} graph is invalid: {str(exc).splitlines()[0]}") from None
            fp32 = Path(scratch) / target.name.replace(".int8", "")
            onnx.save(graph, fp32)
            del graph
            quantized = Path(scratch) / target.name
            # MatMul only: convolutions and the hand-quantized embedding stay as they are. Per-channel
            # scales track the float model closer (on the dev calls ~10% vs ~20% word disagreement).
            with _quiet_quantizer():
                quantize_dynamic(
                    fp32, quantized, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8, per_channel=True
                )
            final = onnx.load(quantized)
            del final.metadata_props[:]
            for key, value in meta.items():
                final.metadata_props.add(key=key, value=value)
            tmp = target.with_suffix(".onnx.tmp")
            onnx.save(final, tmp)
            tmp.replace(target)
    tmp_tokens = outputs.tokens.with_suffix(".txt.tmp")
    tmp_tokens.write_text(tokens_text, encoding="utf-8")
    tmp_tokens.replace(outputs.tokens)
    return outputs
