# Production image: non-root, several uvicorn workers. Configure with ONECARD_* variables
# (see README); PostgreSQL via ONECARD_DATABASE_URL, master key via ONECARD_MASTER_KEY.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY onecard ./onecard
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ONECARD_DATA_DIR=/var/lib/onecard
RUN useradd --system --uid 10001 --home-dir /var/lib/onecard --create-home onecard
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels onecard && rm -rf /wheels
USER onecard
WORKDIR /var/lib/onecard
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["onecard", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
