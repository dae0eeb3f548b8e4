"""Whisper with beam search: our own decoding loop over the model store's ONNX encoder/decoder.

sherpa-onnx decodes Whisper greedily only. This module runs the *same* int8 encoder/decoder files
(built by ``parallax models build``, see ``firmware/provision/whisper_graph.py``) through
onnxruntime's Python API and searches several hypotheses at once. It reproduces sherpa-onnx's
greedy path exactly so that ``beam_size = 1`` transcribes as sherpa-onnx does:

- features: kaldi-native-fbank's Whisper log-mel (the library sherpa-onnx computes them with), then
  Whisper's normalisation (log10, floor at max - 8, (x + 4) / 4) and ``tail_paddings`` zero frames;
- the decoder is primed with the start-of-transcript sequence and no-timestamps, and stops at
  end-of-text or after 6 tokens per second of audio (at most half the text context);
- token suppression is part of the decoder graph (a constant bias on the logits).

Beam search keeps the ``beam_size`` best unfinished hypotheses by summed log-probability, collects
finished ones (end-of-text) until ``beam_size`` have ended, and returns the finished one with the
best mean log-probability per token (end-of-text counted), as OpenAI's decoder ranks them without
a length penalty. Hypotheses run as one decoder batch; caches are reordered between steps.

An optional prompt (``<|startofprev|>`` + text before the start sequence) lets the playbook's names
steer the decoder. The runtime has no BPE merge table, so prompt text is tokenised by longest
match over the vocabulary's byte strings: a valid, if not always canonical, token sequence.

Thread contract: one instance is used from one worker thread at a time (the pipeline's recogniser
thread); ``transcribe`` blocks for the recognition.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from firmware.audio.frames import ANALYSIS_RATE_HZ, PcmF32
from firmware.errors import ModelError
from firmware.speech.config import RecognizerConfig

if TYPE_CHECKING:
    from firmware.store import Manifest

log = logging.getLogger(__name__)

_MIN_SAMPLES = ANALYSIS_RATE_HZ // 10
_MAX_FRAMES = 3000  # Whisper's 30 s window, in 10 ms feature frames
_TOKENS_PER_S = 6  # sherpa-onnx's cap on a transcript's length
_MAX_TOKEN_BYTES = 64


@dataclass(frozen=True)
class _Special:
    sot_sequence: tuple[int, ...]
    no_timestamps: int
    eot: int
    sot_prev: int
    n_text_ctx: int
    n_text_layer: int
    n_text_state: int
    n_mels: int


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    peak = logits.max(axis=-1, keepdims=True)
    shifted = logits - peak
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _top(rows: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row, the indices of the ``k`` largest values, best first; ties go to the lower id (as argmax)."""
    k = min(k, rows.shape[1])
    part = np.argpartition(-rows, k - 1, axis=1)[:, :k]
    return [p[np.lexsort((p, -row[p]))] for row, p in zip(rows, part)]


class WhisperOnnx:
    """The model store's Whisper encoder/decoder, run by onnxruntime with greedy or beam search."""

    def __init__(self, encoder: Path, decoder: Path, tokens: Path, *, num_threads: int = 1, tail_paddings: int = 1000) -> None:
        import kaldi_native_fbank  # lazy: native libraries, loaded only when beam search is configured

        from firmware.speech.ort import import_onnxruntime

        ort = import_onnxruntime()
        self._knf = kaldi_native_fbank
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Spinning worker threads burn CPU the rest of the box needs (and the process_time we report).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self._encoder = ort.InferenceSession(str(encoder), options, providers=providers)
        self._decoder = ort.InferenceSession(str(decoder), options, providers=providers)
        meta = self._encoder.get_modelmeta().custom_metadata_map
        try:
            self.special = _Special(
                sot_sequence=tuple(int(t) for t in meta["sot_sequence"].split(",")),
                no_timestamps=int(meta["no_timestamps"]),
                eot=int(meta["eot"]),
                sot_prev=int(meta["sot_prev"]),
                n_text_ctx=int(meta["n_text_ctx"]),
                n_text_layer=int(meta["n_text_layer"]),
                n_text_state=int(meta["n_text_state"]),
                n_mels=int(meta["n_mels"]),
            )
        except (KeyError, ValueError) as exc:
            raise ModelError(f"Whisper encoder {encoder} lacks usable metadata: {exc}") from None
        self._tail_paddings = 1000 if tail_paddings <= 0 else tail_paddings
        self._pieces = self._read_tokens(tokens)
        self._by_bytes: dict[bytes, int] | None = None

    @staticmethod
    def _read_tokens(path: Path) -> dict[int, bytes]:
        pieces: dict[int, bytes] = {}
        for line in path.read_text(encoding="ascii").splitlines():
            parts = line.split()
            if len(parts) == 2:
                pieces[int(parts[1])] = base64.b64decode(parts[0])
            elif len(parts) == 1:
                pieces[int(parts[0])] = b""
        return pieces

    # -- features and encoder -------------------------------------------------------------------
    def features(self, samples: PcmF32) -> tuple[np.ndarray, int]:
        """Whisper's normalised log-mel [1, n_mels, T] with tail padding, and the speech frame count."""
        opts = self._knf.WhisperFeatureOptions()
        opts.dim = self.special.n_mels
        fbank = self._knf.OnlineWhisperFbank(opts)
        fbank.accept_waveform(ANALYSIS_RATE_HZ, np.ascontiguousarray(samples, dtype=np.float32))
        fbank.input_finished()
        frames = fbank.num_frames_ready
        mel = np.empty((frames, self.special.n_mels), np.float32)
        for i in range(frames):
            mel[i] = fbank.get_frame(i)
        frames = min(frames, _MAX_FRAMES - 50)  # as sherpa-onnx: 30 s at most, some padding always
        mel = np.log10(np.maximum(mel[:frames], np.float32(1e-10)))
        mel = (np.maximum(mel, mel.max() - np.float32(8.0)) + np.float32(4.0)) / np.float32(4.0)
        total = min(frames + self._tail_paddings, _MAX_FRAMES)
        padded = np.zeros((1, self.special.n_mels, total), np.float32)
        padded[0, :, :frames] = mel.T
        return padded, frames

    def encode(self, samples: PcmF32) -> tuple[np.ndarray, np.ndarray, int]:
        mel, frames = self.features(samples)
        cross_k, cross_v = self._encoder.run(["n_layer_cross_k", "n_layer_cross_v"], {"mel": mel})
        return cross_k, cross_v, frames

    # -- decoding -------------------------------------------------------------------------------
    def _step(self, tokens: np.ndarray, k: np.ndarray, v: np.ndarray, cross: tuple[np.ndarray, np.ndarray],
              offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, k, v = self._decoder.run(
            ["logits", "out_n_layer_self_k_cache", "out_n_layer_self_v_cache"],
            {
                "tokens": tokens,
                "in_n_layer_self_k_cache": k,
                "in_n_layer_self_v_cache": v,
                "n_layer_cross_k": cross[0],
                "n_layer_cross_v": cross[1],
                "offset": np.array([offset], np.int64),
            },
        )
        return _log_softmax(logits[:, -1, :]), k, v

    def initial_tokens(self, prompt: Sequence[int] = ()) -> list[int]:
        sp = self.special
        start = [*sp.sot_sequence, sp.no_timestamps]
        if not prompt:
            return start
        room = sp.n_text_ctx // 2 - 1  # Whisper keeps a prompt to half the text context
        return [sp.sot_prev, *list(prompt)[-room:], *start]

    def search(self, cross_k: np.ndarray, cross_v: np.ndarray, frames: int, *, beam_size: int = 1,
               prompt: Sequence[int] = ()) -> list[int]:
        """The best token sequence (without the end token) for one encoded clip."""
        sp = self.special
        initial = self.initial_tokens(prompt)
        shape = (sp.n_text_layer, 1, sp.n_text_ctx, sp.n_text_state)
        k = np.zeros(shape, np.float32)
        v = np.zeros(shape, np.float32)
        logp, k, v = self._step(np.array([initial], np.int64), k, v, (cross_k, cross_v), 0)
        offset = len(initial)
        max_tokens = min(int(frames / 100.0 * _TOKENS_PER_S), sp.n_text_ctx // 2)
        tiled: dict[int, tuple[np.ndarray, np.ndarray]] = {1: (cross_k, cross_v)}

        live: list[tuple[list[int], float]] = [([], 0.0)]
        finished: list[tuple[list[int], float]] = []
        for _ in range(max_tokens):
            candidates: list[tuple[float, int, int]] = []
            for row, top in enumerate(_top(logp, beam_size + 1)):
                score = live[row][1]
                candidates.extend((score + float(logp[row, token]), row, int(token)) for token in top)
            # Best first; among equal scores the earlier hypothesis and lower token win (stable sort).
            candidates.sort(key=lambda c: -c[0])
            next_live: list[tuple[list[int], float]] = []
            sources: list[int] = []
            for score, row, token in candidates:
                if token == sp.eot:
                    if len(finished) < beam_size:
                        finished.append((live[row][0], score))
                    continue
                next_live.append(([*live[row][0], token], score))
                sources.append(row)
                if len(next_live) == beam_size:
                    break
            if len(finished) >= beam_size or not next_live or offset >= sp.n_text_ctx - 1:
                live = next_live
                break
            n = len(next_live)
            if n not in tiled:
                tiled[n] = (np.repeat(cross_k, n, axis=1), np.repeat(cross_v, n, axis=1))
            if sources != list(range(len(live))) or n != len(live):
                k = np.take(k, sources, axis=1)
                v = np.take(v, sources, axis=1)
            live = next_live
            tokens = np.array([[hyp[-1]] for hyp, _ in live], np.int64)
            logp, k, v = self._step(tokens, k, v, tiled[n], offset)
            offset += 1
        # Nothing finished (the length cap ended the search): the unfinished hypotheses compete.
        pool = finished or live
        if not pool:
            return []
        if beam_size == 1 and not finished:
            return pool[0][0]
        best = max(pool, key=lambda h: h[1] / (len(h[0]) + 1))
        return best[0]

    # -- text -----------------------------------------------------------------------------------
    def text(self, tokens: Sequence[int]) -> str:
        raw = b"".join(self._pieces.get(t, b"") for t in tokens if t < self.special.eot)
        return raw.decode("utf-8", errors="replace").strip()

    def encode_text(self, text: str) -> list[int]:
        """Token ids for ``text`` by longest match over the vocabulary (words keep their leading space)."""
        if self._by_bytes is None:
            self._by_bytes = {piece: token for token, piece in sorted(self._pieces.items(), reverse=True) if piece}
        out: list[int] = []
        raw = (" " + " ".join(text.split())).encode("utf-8") if text.strip() else b""
        i = 0
        while i < len(raw):
            for j in range(min(len(raw), i + _MAX_TOKEN_BYTES), i, -1):
                token = self._by_bytes.get(raw[i:j])
                if token is not None:
                    out.append(token)
                    i = j
                    break
            else:  # a byte no token covers: byte-level BPE has every byte, so only a broken file lands here
                i += 1
        return out

    def transcribe(self, samples: PcmF32, *, beam_size: int = 1, prompt: Sequence[int] = ()) -> str:
        cross_k, cross_v, frames = self.encode(samples)
        return self.text(self.search(cross_k, cross_v, frames, beam_size=beam_size, prompt=prompt))


class BeamWhisperRecognizer:
    """The :class:`~firmware.speech.recognizer.Recognizer` for ``decoding = "beam"``."""

    def __init__(self, manifest: Manifest, config: RecognizerConfig) -> None:
        manifest.verify()
        self.name = manifest.name
        self.beam_size = config.beam_size
        options = manifest.options
        if str(options.get("task", "transcribe")) != "transcribe":
            raise ModelError(f"model {manifest.name}: beam decoding supports the transcribe task only")
        try:
            self._model = WhisperOnnx(
                manifest.file("encoder"), manifest.file("decoder"), manifest.file("tokens"),
                num_threads=config.num_threads, tail_paddings=config.tail_paddings,
            )
        except ImportError as exc:
            raise ModelError(f"beam decoding needs onnxruntime and kaldi-native-fbank: {exc}") from None
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"model {manifest.name} failed to load: {exc}") from None
        self._prompt: list[int] = []

    @classmethod
    def from_manifest(cls, manifest: Manifest, config: RecognizerConfig) -> BeamWhisperRecognizer:
        return cls(manifest, config)

    def set_prompt(self, text: str) -> None:
        """Words the decoder should expect (a playbook's names), as Whisper's previous-text prompt."""
        self._prompt = self._model.encode_text(text)

    def transcribe(self, samples: PcmF32) -> str:
        if len(samples) < _MIN_SAMPLES:
            return ""
        return self._model.transcribe(samples, beam_size=self.beam_size, prompt=self._prompt)
