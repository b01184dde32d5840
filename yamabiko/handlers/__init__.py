"""One module per namespace, each a :class:`~yamabiko.sessions.methods.Router`.

The lifecycle methods (``initialize``, ``ping``, ``session/refresh``...) belong to the
session itself and live in :mod:`yamabiko.sessions.lifecycle`.
"""

from __future__ import annotations

from yamabiko.sessions.methods import Router


def routers() -> list[Router]:
    """Every namespace's router, for the server to assemble."""
    from yamabiko.handlers import (
        admin,
        agent,
        agents,
        audio,
        chat,
        conversations,
        ghost,
        mcp_face,
        mcp_logging,
        mcp_resources,
        mcp_servers,
        music,
        stream,
    )

    return [
        agents.router,
        conversations.router,
        chat.router,
        stream.router,
        ghost.router,
        audio.router,
        agent.router,
        music.router,
        mcp_servers.router,
        mcp_face.router,
        mcp_resources.router,
        mcp_logging.router,
        admin.router,
    ]
