"""Per-source builders: turn a manifest's verified inputs into its runtime files."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from firmware.errors import ProvisioningError
from firmware.provision.manifest import ModelRecipe
from firmware.provision.progress import Progress
from firmware.provision.sources import Source

# (manifest, its parsed source, input bytes by role, progress) -> None; writes manifest.files.
Builder = Callable[[ModelRecipe, Source, Mapping[str, bytes], Progress], None]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_extract(manifest: ModelRecipe, source: Source, inputs: Mapping[str, bytes], progress: Progress) -> None:
    """Each input role is written verbatim to the runtime file of the same role."""
    if set(inputs) != set(manifest.files):
        raise ProvisioningError(f"model {manifest.name}: input roles {sorted(inputs)} do not match [files] {sorted(manifest.files)}")
    for role, data in inputs.items():
        _write_atomic(manifest.file(role), data)


def build_ct2_whisper(manifest: ModelRecipe, source: Source, inputs: Mapping[str, bytes], progress: Progress) -> None:
    from firmware.provision.whisper_convert import convert_whisper
    from firmware.provision.whisper_vocab import parse_vocabulary

    missing = {"model.bin", "vocabulary", "config"} - set(inputs)
    if missing:
        raise ProvisioningError(f"model {manifest.name}: source lacks input role(s) {', '.join(sorted(missing))}")
    try:
        config = json.loads(inputs["config"])
        suppress_ids = [int(t) for t in config.get("suppress_ids", [])]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ProvisioningError(f"model {manifest.name}: config.json is malformed: {exc}") from None
    vocab_name = next(pin.member for pin in source.inputs if pin.role == "vocabulary")
    vocabulary = parse_vocabulary(inputs["vocabulary"], vocab_name)
    language = str(manifest.options.get("language", "en"))
    progress.line(f"{manifest.name}: converting CTranslate2 weights to int8 ONNX ...")
    outputs = convert_whisper(
        inputs["model.bin"], vocabulary, suppress_ids, manifest.directory, model_type=manifest.name,
        language=language, origin=f"{manifest.name} model.bin", report=lambda message: progress.line(f"{manifest.name}: {message}"),
    )  # fmt: skip
    written = {"encoder": outputs.encoder, "decoder": outputs.decoder, "tokens": outputs.tokens}
    if any(manifest.file(role) != path for role, path in written.items()):
        raise ProvisioningError(f"model {manifest.name}: [files] must be {', '.join(f'{r} = {p.name!r}' for r, p in written.items())}")


BUILDERS: dict[str, Builder] = {"extract": build_extract, "ct2-whisper": build_ct2_whisper}
