"""Whisper vocabulary: the sherpa-onnx tokens file and the encoder metadata it reads.

CTranslate2 stores the vocabulary as GPT-2 byte-level BPE strings (bytes mapped to printable
code points). sherpa-onnx wants one line per ordinary token: base64 of the raw bytes, then the id.
Special-token ids are found by name, never hard-coded, so English-only and multilingual
vocabularies (whose ids differ by one) both work.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from firmware.errors import ProvisioningError
from firmware.provision.whisper_graph import WhisperDims

_LANGUAGE = re.compile(r"^<\|([a-z]{2,3}|haw|yue)\|>$")


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's reversible byte -> printable character map."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return {char: b for b, char in mapping.items()}


def parse_vocabulary(raw: bytes, filename: str) -> list[str]:
    """``vocabulary.txt`` (one token per line) or ``vocabulary.json`` (a JSON list)."""
    try:
        text = raw.decode("utf-8")
        if filename.endswith(".json"):
            tokens = json.loads(text)
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ValueError("not a list of strings")
            return tokens
        return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProvisioningError(f"vocabulary {filename} is malformed: {exc}") from None


@dataclass(frozen=True)
class WhisperVocabulary:
    tokens: Sequence[str]

    def id_of(self, token: str) -> int:
        try:
            return self.tokens.index(token)
        except ValueError:
            raise ProvisioningError(f"vocabulary lacks the special token {token}") from None

    @property
    def eot(self) -> int:
        return self.id_of("<|endoftext|>")

    def language_tokens(self) -> list[tuple[int, str]]:
        sot, translate = self.id_of("<|startoftranscript|>"), self.id_of("<|translate|>")
        found = []
        for token_id in range(sot + 1, translate):
            match = _LANGUAGE.match(self.tokens[token_id])
            if not match:
                raise ProvisioningError(f"unexpected token {self.tokens[token_id]!r} among the language tokens")
            found.append((token_id, match.group(1)))
        return found

    def suppressed_tokens(self, symbol_ids: Sequence[int]) -> tuple[int, ...]:
        """Tokens the decoder must never emit, as OpenAI's and faster-whisper's decoding suppress them.

        ``symbol_ids`` is the model's own non-speech symbol list (CTranslate2's ``suppress_ids``):
        "(", "[", "♪" and the like, which start "(upbeat music)" or "[speaking foreign language]",
        and a stray quote mark that derails the rest of a line. Added: the task and context specials,
        and, since decoding runs without timestamps, the no-timestamps marker and every timestamp.
        End-of-text and the language tokens stay (sherpa-onnx detects a language from those).
        A blank or end-of-text first token is left allowed on purpose: a segment that is only line
        noise should come out empty rather than as a forced "Thank you.".
        """
        no_timestamps = self.id_of("<|notimestamps|>")
        specials = [self.id_of(name) for name in ("<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
                                                  "<|startoflm|>", "<|startofprev|>")]  # fmt: skip
        specials.append(self._no_speech())
        specials += range(no_timestamps, len(self.tokens))
        symbols = {t for t in symbol_ids if 0 <= t < len(self.tokens) and t != self.eot}
        return tuple(sorted(symbols | set(specials)))

    def _no_speech(self) -> int:
        return self.id_of("<|nospeech|>") if "<|nospeech|>" in self.tokens else self.id_of("<|nocaptions|>")

    def tokens_file(self) -> str:
        """sherpa-onnx tokens.txt: ``<base64 bytes> <id>`` for every ordinary token (< eot).

        An empty token becomes a bare id, which sherpa-onnx reads back as the empty string.
        """
        decoder = _byte_decoder()
        lines = []
        for token_id in range(self.eot):
            try:
                raw = bytes(decoder[ch] for ch in self.tokens[token_id])
            except KeyError as exc:
                raise ProvisioningError(f"token {token_id} {self.tokens[token_id]!r} is not byte-level BPE: {exc}") from None
            lines.append(f"{base64.b64encode(raw).decode('ascii')} {token_id}")
        return "\n".join(lines) + "\n"

    def metadata(self, dims: WhisperDims, model_type: str, language: str, suppress_ids: Sequence[int]) -> dict[str, str]:
        """Encoder metadata keys as sherpa-onnx's whisper model reads them."""
        if len(self.tokens) != dims.n_vocab:
            raise ProvisioningError(f"vocabulary has {len(self.tokens)} tokens but the model has {dims.n_vocab}")
        multilingual = dims.n_vocab >= 51865  # Whisper's own test: English-only vocabularies are one shorter
        sot, eot = self.id_of("<|startoftranscript|>"), self.eot
        transcribe = self.id_of("<|transcribe|>")
        languages = self.language_tokens()
        codes = [code for _, code in languages]
        if multilingual:
            if language not in codes:
                raise ProvisioningError(f"language {language!r} is not one of the model's languages")
            sot_sequence = [sot, languages[codes.index(language)][0], transcribe]
        else:
            sot_sequence = [sot]
        no_speech = self._no_speech()
        values: dict[str, object] = {
            "model_type": model_type,
            "version": "1",
            "maintainer": "parallax-provision",
            **{field: getattr(dims, field) for field in dims.__dataclass_fields__},
            "sot_sequence": ",".join(map(str, sot_sequence)),
            "all_language_tokens": ",".join(str(token_id) for token_id, _ in languages),
            "all_language_codes": ",".join(codes),
            "sot": sot,
            "sot_index": 0,
            "eot": eot,
            "blank_id": self.id_of("Ġ"),
            "is_multilingual": int(multilingual),
            "no_speech": no_speech,
            "non_speech_tokens": ",".join(str(t) for t in suppress_ids if 0 <= t < eot),
            "transcribe": transcribe,
            "translate": self.id_of("<|translate|>"),
            "sot_prev": self.id_of("<|startofprev|>"),
            "sot_lm": self.id_of("<|startoflm|>"),
            "no_timestamps": self.id_of("<|notimestamps|>"),
        }
        return {key: str(value) for key, value in values.items()}
