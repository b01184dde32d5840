"""Audio engines: singing and speech as float32 blocks (docs/audio.md). One
protocol (:mod:`.base`); engines ``singer`` (the default, numpy), ``onnx`` and ``tts``;
:mod:`.encode` turns blocks into the wire formats."""
