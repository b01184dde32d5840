"""Ghost-text engines: the next words of a document, suggested while the user types
(DESIGN.md section 9). One protocol (:mod:`.base`); engines ``ngram`` (the default),
``onnx`` and ``llm``."""
