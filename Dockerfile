# The telemed server image: one Python process per container; scale by adding containers.
# Pinned by Debian release: "python:3.11-slim" moved from Debian 12 to 13 under our feet once.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# Editable install: the server finds web/ and migrations/ beside its sources.
# No system packages: the wheels bundle what they need (PyAV's FFmpeg/libvpx/opus, pylibsrtp's
# libsrtp, cryptography's OpenSSL, asyncpg, Pillow).
COPY pyproject.toml README.md alembic.ini ./
COPY server ./server
COPY signaling ./signaling
COPY migrations ./migrations
COPY web ./web
COPY deploy/make_certs.py ./deploy/make_certs.py
RUN pip install -e . && useradd --create-home --uid 10001 telemed && mkdir -p /data && chown telemed /data
USER telemed
ENV TELEMED_DATA_DIR=/data TELEMED_HOST=0.0.0.0 TELEMED_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status==200 else 1)"
CMD ["telemed", "serve", "--skip-migrations"]
