"""Generic JSON-RPC 2.0: messages, errors and the sans-I/O peer. Knows no Yamabiko method."""
