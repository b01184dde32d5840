"""Ghost-text engines: the next words of a document, suggested while the user types
(docs/ghost.md). One protocol (:mod:`.base`); engines ``ngram`` (the default),
``onnx`` and ``llm``; :mod:`.calibration` says how sure ``ngram`` is, :mod:`.segment`
reads Japanese words, :mod:`.savings` measures what suggestions spare a typist."""
