# Yamabiko: slim Python base, non-root user, health check on /health/live.
#   docker build -t yamabiko .
#   docker run -p 8765:8765 -p 8766:8766 -v yamabiko-data:/data yamabiko
# 8765: the socket and HTTP endpoints; 8766: the MCP Streamable HTTP face (/mcp).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    YAMABIKO_HOST=0.0.0.0 \
    YAMABIKO_PORT=8765 \
    YAMABIKO_DATA_DIR=/data

RUN groupadd --system yamabiko && useradd --system --gid yamabiko --home-dir /app yamabiko

WORKDIR /app
COPY pyproject.toml README.md ./
COPY yamabiko ./yamabiko
RUN pip install . && mkdir -p /data && chown yamabiko:yamabiko /data

USER yamabiko
VOLUME ["/data"]
EXPOSE 8765 8766

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8765/health/live', timeout=2).status == 200 else 1)"

ENTRYPOINT ["yamabiko"]
CMD ["serve"]
