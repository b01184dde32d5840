"""Yamabiko: a real-time AI server speaking JSON-RPC 2.0 over one WebSocket."""

__version__ = "0.1.0"
