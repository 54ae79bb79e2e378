# syntax=docker/dockerfile:1
# claims-ocr on CPU: the admin API, beat, the poller and the submit worker
# (docker-compose.prod.yml). The OCR worker uses Dockerfile.gpu.
#   docker build -t claims-ocr:latest .

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY pyproject.toml README.md ./
COPY services ./services
COPY workers ./workers
RUN pip install --upgrade pip \
    && pip install .

FROM python:3.11-slim-bookworm
# libglib and libgomp: OpenCV and ONNX Runtime's CPU threads (the API reads PDFs' pages).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 claims \
    && useradd --system --uid 10001 --gid claims --home-dir /nonexistent \
        --shell /usr/sbin/nologin claims \
    && install -d -o claims -g claims -m 0700 /var/lib/claims-ocr /var/lib/claims-ocr-blobs
COPY --from=build /opt/venv /opt/venv
# A read-only root filesystem: no bytecode written next to the code, caches under /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache
USER 10001:10001
WORKDIR /var/lib/claims-ocr
EXPOSE 8000 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["claims-ocr", "api", "--host", "0.0.0.0"]
