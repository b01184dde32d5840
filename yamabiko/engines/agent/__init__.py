"""The agent engine: DAW actions checked against the project, decoded from model output
and applied to a context (:mod:`yamabiko.engines.agent.validate`)."""
