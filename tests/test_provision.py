"""Model provisioning: CTranslate2 reader, wheel pinning, manifests, builds, and the real models."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from firmware.cli.main import main as cli_main
from firmware.errors import ModelError, ProvisioningError
from firmware.provision.build import build_models, is_up_to_date
from firmware.provision.ct2 import parse_ct2
from firmware.provision.fetch import WheelCache, WheelPin, pip_download, read_member
from firmware.provision.manifest import RECIPES_DIR, load_manifest, read_recipe
from firmware.provision.whisper_graph import SUPPRESSED_LOGIT
from firmware.store import ModelStore

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("provision_synth", REPO / "tests" / "fixtures" / "provision" / "synth.py")
assert _spec and _spec.loader
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


# --- CTranslate2 reader --------------------------------------------------------------------


def test_ct2_reader_widens_float16_and_resolves_aliases() -> None:
    weight = np.arange(12, dtype=np.float16).reshape(3, 4) / 8
    data = synth.ct2_bytes(
        {"decoder/embeddings/weight": weight, "decoder/num_heads": np.array(6, np.int16)},
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    model = parse_ct2(data)
    assert model.spec == "WhisperSpec" and model.format_version == 6
    assert model["decoder/embeddings/weight"].dtype == np.float32
    np.testing.assert_array_equal(model["decoder/embeddings/weight"], weight.astype(np.float32))
    np.testing.assert_array_equal(model["decoder/projection/weight"], model["decoder/embeddings/weight"])
    assert int(model["decoder/num_heads"]) == 6
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_ct2_layer_count_ignores_layer_norm() -> None:
    variables, _ = synth.tiny_whisper(d=8)
    variables["encoder/layer_1/ffn/layer_norm/gamma"] = np.ones(8, np.float16)
    model = parse_ct2(synth.ct2_bytes(variables))
    assert "encoder/layer_norm/gamma" in model
    assert model.count_layers("encoder") == 2 and model.count_layers("decoder") == 1


@pytest.mark.parametrize("cut", [3, 40, -5])
def test_ct2_truncated_file_is_a_model_error(cut: int) -> None:
    data = synth.ct2_bytes({"a": np.ones((4, 4), np.float16)}, {"b": "a"})
    with pytest.raises(ProvisioningError, match="truncated or corrupt"):
        parse_ct2(data[:cut], "model.bin")


def test_ct2_garbage_and_bad_alias_are_model_errors() -> None:
    with pytest.raises(ModelError, match="not a supported CTranslate2 model"):
        parse_ct2(np.random.default_rng(1).bytes(4096))
    with pytest.raises(ModelError, match="missing variable"):
        parse_ct2(synth.ct2_bytes({"a": np.ones(2, np.float16)}, {"b": "nope"}))
    with pytest.raises(ModelError, match="trailing bytes"):
        parse_ct2(synth.ct2_bytes({"a": np.ones(2, np.float16)}) + b"\0\0")


# --- wheels and pins -----------------------------------------------------------------------


def _wheel_bytes(tmp_path: Path, content: bytes) -> bytes:
    path = tmp_path / "w.zip"
    synth.write_wheel(path, {"pkg/data.bin": content})
    return path.read_bytes()


def test_wheel_with_wrong_sha256_is_rejected_and_not_cached(tmp_path: Path) -> None:
    served = _wheel_bytes(tmp_path, b"tampered")
    pin = WheelPin("demo-pkg", "1.0", synth.sha256(_wheel_bytes(tmp_path, b"genuine")))

    def downloader(requirement: str, dest: Path) -> None:  # behaves like `pip download`: one wheel into dest
        assert requirement == "demo-pkg==1.0"
        (dest / "demo_pkg-1.0-py3-none-any.whl").write_bytes(served)

    cache = WheelCache(tmp_path / "cache", downloader)
    with pytest.raises(ProvisioningError, match="SHA-256 mismatch"):
        cache.wheel(pin)
    assert not list((tmp_path / "cache").glob("*.whl"))


def test_stale_cached_wheel_is_replaced_by_a_verified_download(tmp_path: Path) -> None:
    good = _wheel_bytes(tmp_path, b"genuine")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "demo_pkg-1.0-py3-none-any.whl").write_bytes(b"half a download")
    downloads = []

    def downloader(requirement: str, dest: Path) -> None:
        downloads.append(requirement)
        (dest / "demo_pkg-1.0-py3-none-any.whl").write_bytes(good)

    wheel = WheelCache(cache_dir, downloader).wheel(WheelPin("demo-pkg", "1.0", synth.sha256(good)))
    assert wheel.read_bytes() == good and downloads == ["demo-pkg==1.0"]
    assert read_member(wheel, "pkg/data.bin", synth.sha256(b"genuine")) == b"genuine"
    with pytest.raises(ProvisioningError, match="SHA-256 mismatch"):
        read_member(wheel, "pkg/data.bin", synth.sha256(b"other"))


def test_pip_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real pip, no index and an empty find-links folder: what an offline box sees.
    (tmp_path / "links").mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "links"))
    with pytest.raises(ProvisioningError, match=r"could not download parallax-no-such-wheel==1\.0 .*: .+") as info:
        pip_download("parallax-no-such-wheel==1.0", tmp_path / "dest")
    assert "\n" not in str(info.value)


# --- recipes and manifests ------------------------------------------------------------------


def test_committed_recipes_parse() -> None:
    for name, family, roles in (
        ("whisper-tiny.en", "whisper", {"encoder", "decoder", "tokens"}),
        ("whisper-base", "whisper", {"encoder", "decoder", "tokens"}),
        ("silero-vad", "silero-vad", {"model"}),
    ):
        recipe = read_recipe(RECIPES_DIR / f"{name}.toml")
        assert recipe.family == family and set(recipe.files) == roles
    assert read_recipe(RECIPES_DIR / "whisper-base.toml").options["language"] == "en"


def test_unbuilt_model_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"^model whisper-tiny\.en is not built: run `parallax models build`$"):
        load_manifest(tmp_path, "whisper-tiny.en")
    with pytest.raises(ModelError, match=r"run `parallax models build --model whisper-base`"):
        load_manifest(tmp_path, "whisper-base")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = [", "not valid TOML"),
        ('name = "other"\nversion="1"\nfamily="whisper"\nlicence="x"\n[files]\na="b"\n[source]\nb=1', "must match its file name"),
        ('name = "m"\nversion="1"\nfamily="kaldi"\nlicence="x"\n[files]\na="b"\n[source]\nb=1', "family 'kaldi'"),
        ('name = "m"\nversion="1"\nfamily="whisper"\nlicence="x"\n[files]\na="../b"\n[source]\nb=1', "plain file name"),
        ('name = "m"\nfamily="whisper"\nlicence="x"\n[files]\na="b"\n[source]\nb=1', "'version'"),
    ],
)
def test_malformed_recipe_is_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ModelError, match=re.escape(message)) as info:
        read_recipe(tmp_path / "m.toml")
    assert "\n" not in str(info.value)


def test_unknown_model_lists_what_exists(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown model 'nope'.*known: .*silero-vad"):
        load_manifest(tmp_path, "nope")


def test_runtime_api_imports_no_inference_engine() -> None:
    code = "import sys, firmware.provision.manifest; print(sorted({'onnx', 'onnxruntime', 'sherpa_onnx'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


# --- builds into the store -----------------------------------------------------------------


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recipes")


@pytest.fixture(scope="module")
def synthetic_build(tmp_path_factory: pytest.TempPathFactory, recipes: Path) -> Path:
    pytest.importorskip("onnx", reason="the build extra (onnx, onnxruntime) is not installed")
    pytest.importorskip("onnxruntime", reason="the build extra (onnx, onnxruntime) is not installed")
    models_dir = tmp_path_factory.mktemp("models")
    synth.synthetic_whisper_setup(models_dir, recipes)
    results = list(build_models(models_dir, ["whisper-synth"], recipes_dir=recipes))
    assert [r.rebuilt for r in results] == [True]
    return models_dir


def _copy_store(store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(store, copy, symlinks=True)  # keep `current` a symlink
    return copy


def test_synthetic_build_then_rerun_is_a_no_op(synthetic_build: Path, recipes: Path) -> None:
    manifest = load_manifest(synthetic_build, "whisper-synth")
    manifest.verify()
    assert manifest.directory == synthetic_build / "whisper-synth" / "1"
    assert os.readlink(synthetic_build / "whisper-synth" / "current") == "1"
    stamps = {p.name: p.stat().st_mtime_ns for p in manifest.directory.iterdir()}
    results = list(build_models(synthetic_build, ["whisper-synth"], recipes_dir=recipes))
    assert [(r.name, r.rebuilt) for r in results] == [("whisper-synth", False)]
    assert {p.name: p.stat().st_mtime_ns for p in manifest.directory.iterdir()} == stamps
    assert {f.path for f in manifest.files.values()} == {"encoder.int8.onnx", "decoder.int8.onnx", "tokens.txt"}
    assert "onnxruntime" in manifest.provenance["tools"] and manifest.provenance["inputs"]
    assert manifest.options["language"] == "en"  # the recipe's [whisper] section, carried into the version
    # nothing but the version, its pointer and the wheel cache: no build or staging leftovers
    assert sorted(p.name for p in (synthetic_build / "whisper-synth").iterdir()) == ["1", "current"]


def test_synthetic_tokens_file_round_trips_bytes(synthetic_build: Path) -> None:
    import base64

    lines = (synthetic_build / "whisper-synth" / "current" / "tokens.txt").read_text().splitlines()
    assert len(lines) == 256  # ordinary tokens only; specials start at eot
    decoded = {int(i): base64.b64decode(b) for b, i in (line.split() for line in lines)}
    assert decoded[32] == b" " and decoded[ord("A")] == b"A" and decoded[255] == b"\xff"


def _decoder_session(models_dir: Path, name: str):  # type: ignore[no-untyped-def]
    from firmware.speech.ort import import_onnxruntime

    ort = import_onnxruntime()
    manifest = load_manifest(models_dir, name)
    enc = ort.InferenceSession(str(manifest.file("encoder")), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(manifest.file("decoder")), providers=["CPUExecutionProvider"])
    return enc, dec


def _check_incremental_decoding(models_dir: Path, name: str, tokens: list[int], frames: int) -> None:
    """Several tokens in one call must give the same logits and caches as one token per call.

    Activations are quantized per call (dynamic int8), so agreement is to a few percent of the
    value range; a leaking causal mask or a misplaced cache row is off by far more."""
    enc, dec = _decoder_session(models_dir, name)
    meta = enc.get_modelmeta().custom_metadata_map
    n_mels, layers, ctx, width = (int(meta[k]) for k in ("n_mels", "n_text_layer", "n_text_ctx", "n_text_state"))
    mel = np.random.default_rng(0).standard_normal((1, n_mels, frames)).astype(np.float32)
    cross_k, cross_v = enc.run(None, {"mel": mel})
    assert cross_k.shape == (layers, 1, (frames + 1) // 2, width)
    empty = np.zeros((layers, 1, ctx, width), np.float32)

    def step(toks: list[int], k: np.ndarray, v: np.ndarray, offset: int) -> list[np.ndarray]:
        feeds = {"tokens": np.array([toks], np.int64), "in_n_layer_self_k_cache": k, "in_n_layer_self_v_cache": v,
                 "n_layer_cross_k": cross_k, "n_layer_cross_v": cross_v, "offset": np.array([offset], np.int64)}  # fmt: skip
        return dec.run(["logits", "out_n_layer_self_k_cache", "out_n_layer_self_v_cache"], feeds)

    logits_all, k_all, v_all = step(tokens, empty, empty, 0)
    assert logits_all.shape == (1, len(tokens), int(meta["n_vocab"])) and k_all.shape == empty.shape
    k, v = empty, empty
    for offset, token in enumerate(tokens):
        logits, k, v = step([token], k, v, offset)
        # Suppressed tokens carry a constant -1e9: compare the others.
        free = (logits[0, 0] > SUPPRESSED_LOGIT / 2) & (logits_all[0, offset] > SUPPRESSED_LOGIT / 2)
        one, joint = logits[0, 0][free], logits_all[0, offset][free]
        assert one.argmax() in np.argsort(joint)[-5:] and joint.argmax() in np.argsort(one)[-5:]
        # Softmax ignores a common shift, which per-call quantization of activations introduces.
        np.testing.assert_allclose(one - one.mean(), joint - joint.mean(), atol=0.05 * np.abs(joint).max())
    np.testing.assert_allclose(k, k_all, atol=3e-2 * np.abs(k_all).max())
    assert not np.any(k_all[:, :, len(tokens) :]), "cache rows past the tokens must stay untouched"


def test_synthetic_decoder_interface_and_causal_cache(synthetic_build: Path) -> None:
    _check_incremental_decoding(synthetic_build, "whisper-synth", [257, 265, 72, 105], frames=37)


def test_synthetic_decoder_suppresses_whisper_non_speech_tokens(synthetic_build: Path) -> None:
    from firmware.provision.whisper_vocab import WhisperVocabulary

    enc, dec = _decoder_session(synthetic_build, "whisper-synth")
    meta = enc.get_modelmeta().custom_metadata_map
    n_mels, layers, ctx, width = (int(meta[k]) for k in ("n_mels", "n_text_layer", "n_text_ctx", "n_text_state"))
    cross_k, cross_v = enc.run(None, {"mel": np.random.default_rng(1).standard_normal((1, n_mels, 23)).astype(np.float32)})
    cache = np.zeros((layers, 1, ctx, width), np.float32)
    vocab = WhisperVocabulary(synth.tiny_whisper()[1])
    ids = {name: vocab.id_of(name) for name in ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|notimestamps|>")}
    tokens = [ids["<|startoftranscript|>"], ids["<|notimestamps|>"], ord("A"), ord(" ")]
    feeds = {"tokens": np.array([tokens], np.int64), "in_n_layer_self_k_cache": cache, "in_n_layer_self_v_cache": cache,
             "n_layer_cross_k": cross_k, "n_layer_cross_v": cross_v, "offset": np.array([0], np.int64)}  # fmt: skip
    logits = dec.run(["logits"], feeds)[0][0]
    suppressed = logits < SUPPRESSED_LOGIT / 2
    # At every position: the model's symbol list (config suppress_ids [1, 2]) and the specials ...
    for token_id in (1, 2, ids["<|startoftranscript|>"], ids["<|translate|>"], ids["<|notimestamps|>"]):
        assert suppressed[:, token_id].all(), token_id
    # ... and nothing else: text, a space, end-of-text and the language tokens stay possible.
    assert suppressed.sum(axis=1).tolist() == [len(vocab.suppressed_tokens([1, 2]))] * len(tokens)
    for token_id in (ord("A"), ord(" "), ids["<|endoftext|>"], ids["<|en|>"]):
        assert not suppressed[:, token_id].any(), token_id


def test_corrupt_output_is_detected_and_rebuilt(synthetic_build: Path, recipes: Path, tmp_path: Path) -> None:
    models_dir = _copy_store(synthetic_build, tmp_path)
    manifest = load_manifest(models_dir, "whisper-synth")
    decoder = manifest.file("decoder")
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    decoder.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"decoder\.int8\.onnx is corrupt"):
        manifest.verify()
    assert not is_up_to_date(ModelStore(models_dir), read_recipe(recipes / "whisper-synth.toml"))
    assert [r.rebuilt for r in build_models(models_dir, ["whisper-synth"], recipes_dir=recipes)] == [True]
    load_manifest(models_dir, "whisper-synth").verify()


def test_a_new_recipe_version_is_built_beside_the_old_and_made_current(
    synthetic_build: Path, recipes: Path, tmp_path: Path
) -> None:
    models_dir = _copy_store(synthetic_build, tmp_path)
    edited = tmp_path / "recipes"
    edited.mkdir()
    text = (recipes / "whisper-synth.toml").read_text()
    (edited / "whisper-synth.toml").write_text(text.replace('version = "1"', 'version = "2"', 1))
    assert [r.rebuilt for r in build_models(models_dir, ["whisper-synth"], recipes_dir=edited)] == [True]
    store = ModelStore(models_dir)
    assert (store.current("whisper-synth"), store.previous("whisper-synth"), store.versions("whisper-synth")) == ("2", "1", ["1", "2"])
    assert store.rollback("whisper-synth") == "1"
    assert load_manifest(models_dir, "whisper-synth").version == "1"


def test_corrupt_model_bin_in_wheel_fails_the_build(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    synth.synthetic_whisper_setup(tmp_path, recipes)
    wheel = next((tmp_path / ".cache").glob("*.whl"))
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["synth/model.bin"] = members["synth/model.bin"][:5000]
    recipe_path = recipes / "whisper-synth.toml"
    text = recipe_path.read_text()
    old_wheel_sha = synth.sha256(wheel.read_bytes())
    new_wheel_sha = synth.write_wheel(wheel, members)
    text = text.replace(old_wheel_sha, new_wheel_sha)
    old_member_sha = re.search(r'member = "synth/model.bin"\nsha256 = "([0-9a-f]+)"', text).group(1)  # type: ignore[union-attr]
    recipe_path.write_text(text.replace(old_member_sha, synth.sha256(members["synth/model.bin"])))
    with pytest.raises(ProvisioningError, match="truncated or corrupt"):
        list(build_models(tmp_path, ["whisper-synth"], recipes_dir=recipes))
    with pytest.raises(ModelError, match="unknown model 'whisper-synth'"):
        load_manifest(tmp_path, "whisper-synth")
    assert list((tmp_path / "whisper-synth").iterdir()) == []  # the failed build left nothing behind


def test_cli_build_list_verify_and_errors(
    synthetic_build: Path, recipes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import firmware.provision.build

    monkeypatch.setattr(firmware.provision.build, "RECIPES_DIR", recipes)
    models_dir = _copy_store(synthetic_build, tmp_path)
    config = tmp_path / "parallax.toml"
    config.write_text(f'[paths]\nmodels_dir = "{models_dir}"\n', encoding="utf-8")
    assert cli_main(["--config", str(config), "models", "build", "--model", "whisper-synth"]) == 0
    assert "whisper-synth: up to date" in capsys.readouterr().out
    assert cli_main(["--config", str(config), "models", "list"]) == 0
    assert re.search(r"whisper-synth\s+whisper\s+1\s+-\s+1\s+[\d.]+ MB", capsys.readouterr().out)
    assert cli_main(["--config", str(config), "models", "build", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parallax: error: unknown model(s) nope") and err.count("\n") == 1
    assert cli_main(["--config", str(config), "models", "verify", "--model", "whisper-synth"]) == 0
    assert capsys.readouterr().out == "whisper-synth 1 (current): ok\n"
    (models_dir / "whisper-synth" / "current" / "tokens.txt").write_text("x 0\n")
    assert cli_main(["--config", str(config), "models", "verify", "--model", "whisper-synth"]) == 2
    err = capsys.readouterr().err
    assert "tokens.txt is" in err and "parallax models build --model whisper-synth --force" in err


# --- the real models (after `parallax models build`) ---------------------------------------


def _espeak_16k(tmp_path: Path, text: str) -> np.ndarray:
    assert shutil.which("espeak-ng"), "espeak-ng is installed by tools/bootstrap"
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
    with wave.open(str(wav)) as reader:
        rate = reader.getframerate()
        audio = np.frombuffer(reader.readframes(reader.getnframes()), np.int16).astype(np.float32) / 32768
    # espeak-ng speaks at 22.05 kHz; its speech has little energy above 8 kHz, so linear interpolation suffices.
    times = np.arange(int(len(audio) * 16000 / rate)) / 16000
    return np.interp(times, np.arange(len(audio)) / rate, audio).astype(np.float32)


@pytest.mark.model
def test_real_whisper_transcribes_english(models_dir: Path, tmp_path: Path) -> None:
    import jiwer
    import sherpa_onnx

    sentence = "We should schedule the product demo for next Tuesday afternoon and send the pricing sheet today."
    audio = _espeak_16k(tmp_path, sentence)
    manifest = load_manifest(models_dir, "whisper-tiny.en")
    manifest.verify()
    recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
        encoder=str(manifest.file("encoder")), decoder=str(manifest.file("decoder")), tokens=str(manifest.file("tokens")),
        language=manifest.options["language"], task=manifest.options["task"], num_threads=1,
    )  # fmt: skip
    stream = recognizer.create_stream()
    stream.accept_waveform(16000, audio)
    recognizer.decode_stream(stream)

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())

    assert jiwer.wer(norm(sentence), norm(stream.result.text)) < 0.35, stream.result.text


@pytest.mark.model
def test_real_decoder_matches_incremental_decoding(models_dir: Path) -> None:
    # start-of-transcript, no-timestamps, then " We should" as sherpa-onnx's greedy search feeds them
    _check_incremental_decoding(models_dir, "whisper-tiny.en", [50257, 50362, 775, 815], frames=300)


@pytest.mark.model
def test_real_silero_vad_finds_the_speech(models_dir: Path, tmp_path: Path) -> None:
    import sherpa_onnx

    speech = _espeak_16k(tmp_path, "Hello, this is a short test of voice activity detection.")
    silence = np.zeros(16000, np.float32)
    audio = np.concatenate([silence, speech, silence])
    manifest = load_manifest(models_dir, "silero-vad")
    config = sherpa_onnx.VadModelConfig()
    config.silero_vad.model = str(manifest.file("model"))
    config.silero_vad.window_size = int(manifest.options["window_size"])
    config.sample_rate = int(manifest.options["sample_rate"])
    vad = sherpa_onnx.VoiceActivityDetector(config, buffer_size_in_seconds=30)
    window = config.silero_vad.window_size
    for start in range(0, len(audio) - window + 1, window):
        vad.accept_waveform(audio[start : start + window])
    vad.flush()
    segments = []
    while not vad.empty():
        segments.append((vad.front.start, len(vad.front.samples)))
        vad.pop()
    assert segments, "no speech found"
    first_start = segments[0][0] / 16000
    last_end = (segments[-1][0] + segments[-1][1]) / 16000
    assert 0.6 < first_start < 1.3 and abs(last_end - (1 + len(speech) / 16000)) < 0.6
