# syntax=docker/dockerfile:1
#
# The DataBuild operator image.
#
#   docker build -t databuild-operator:0.1.0 .
#
# Two stages: the builder installs the package and its dependencies into a virtualenv;
# the final stage copies only that virtualenv onto the same slim base, so no build
# tooling ships. The image runs as a numeric non-root user and writes nothing outside
# /tmp, so it works with readOnlyRootFilesystem (the Helm chart mounts /tmp as emptyDir).
#
# Pin the base by digest in release builds:
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies in their own layer: it is rebuilt only when pyproject.toml changes, not
# on every source edit. Every dependency ships wheels, so no compiler is needed.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt

# The package itself, installed (not editable) without touching the dependencies above.
COPY README.md ./
COPY operator/ operator/
RUN pip install --no-deps . \
    && pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="databuild-operator" \
      org.opencontainers.image.description="A Kubernetes operator that builds data partitions on demand, upstream first." \
      org.opencontainers.image.licenses="Apache-2.0"
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time (the builder
# already compiled the bytecode). HOME and TMPDIR point at the one writable path.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
COPY --from=builder /opt/venv /opt/venv

# 65532 is the conventional "nonroot" uid/gid; numeric so that Kubernetes can verify
# runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
WORKDIR /tmp

# 8080: kopf's liveness endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
# Kubernetes ignores HEALTHCHECK (the chart defines liveness and readiness probes on
# the same endpoint); this serves `docker run` users.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["python", "-m", "databuild.operator"]
# No --namespace: every namespace. The chart passes its own arguments.
CMD ["--health-port=8080", "--metrics-port=9090"]
