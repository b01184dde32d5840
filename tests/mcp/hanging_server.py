"""An "MCP server" that reads its stdin and never answers: ``initialize`` waits forever.
It exits when its stdin closes, as a stdio server should."""

import sys

for _line in sys.stdin:
    pass
