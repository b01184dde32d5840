"""Tests of yamabiko.engines.agent."""
