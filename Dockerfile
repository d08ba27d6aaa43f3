# DevMesh API image for compose.yaml (its two replicas). The engines (FalkorDB, Qdrant, ClickHouse, Ollama) run in their own containers.
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_PIP_ARGS=""
ENV PYTHONUNBUFFERED=1 DEVMESH_HOME=/data HF_HUB_OFFLINE=1
WORKDIR /app
RUN pip install --no-cache-dir ${TORCH_PIP_ARGS} "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY graph graph
COPY retrieval retrieval
COPY agents agents
COPY detect detect
COPY api api
COPY bench bench
COPY prompts prompts
COPY samples samples
# clickhouse-connect for the ClickHouse event store (DEVMESH_EVENTS_URL); chDB, the in-process stand-in of the
# `clickhouse` extra, is for tests and benchmarks and stays out of the image (a 534 MB install).
RUN pip install --no-cache-dir . "clickhouse-connect>=0.8"
RUN useradd --create-home devmesh && mkdir -p /data && chown devmesh /data
USER devmesh
EXPOSE 8080
CMD ["devmesh", "serve", "--host", "0.0.0.0", "--port", "8080"]
