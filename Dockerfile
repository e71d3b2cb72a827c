# syntax=docker/dockerfile:1
#
# The DataBuild operator image.
#
#   make image                                   # buildah, no Docker, no registry
#   docker build -t databuild-operator:0.1.0 .   # where a Docker engine and Docker Hub are
#
# Two stages: the builder installs the product's locked dependencies and the package
# into a virtualenv; the final stage copies only that virtualenv onto the same base, so
# no build tooling ships, and neither the test harness, the benchmarks nor their
# dependencies (they are extras the lock file leaves out). The image runs as a numeric
# non-root user and writes nothing outside /tmp, so it works with readOnlyRootFilesystem
# (the Helm chart mounts /tmp as emptyDir).
#
# PYTHON_IMAGE is any Debian-based image with `python` 3.11 on its PATH. Pin it by
# digest in release builds:
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
# `make image` builds a local one from Debian packages instead (hack/build-image.sh).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies in their own layer, rebuilt only when the lock changes. Every one is
# pinned with its hashes (`make lock`) and installed from wheels only: no compiler, no
# unverified download, no setup.py run.
COPY requirements/image.txt ./requirements.txt
RUN pip install --require-hashes --only-binary=:all: --requirement requirements.txt

# The package itself, built with the locked setuptools above (no isolated build
# environment fetching unpinned build tools), without touching the dependencies.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The test harness and the benchmarks are extras whose dependencies the image lacks:
# their modules go too, so the image holds only what runs in it.
RUN pip install --no-deps --no-build-isolation . \
    && pip uninstall --yes pip setuptools \
    && rm -rf /opt/venv/lib/python3*/site-packages/databuild/testing \
              /opt/venv/lib/python3*/site-packages/databuild/bench

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="databuild-operator" \
      org.opencontainers.image.description="A Kubernetes operator that builds data partitions on demand, upstream first." \
      org.opencontainers.image.licenses="Apache-2.0"
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time (the builder
# already compiled the bytecode). HOME and TMPDIR point at the one writable path.
# USER: the numeric uid has no /etc/passwd entry; getpass.getuser() reads $USER before
# the passwd file, so the process still has a login name.
ENV PATH=/opt/venv/bin:$PATH \
    USER=databuild \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
COPY --from=builder /opt/venv /opt/venv

# 65532 is the conventional "nonroot" uid/gid; numeric so that Kubernetes can verify
# runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
WORKDIR /tmp

# 8080: the liveness endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
# Kubernetes ignores HEALTHCHECK (the chart defines liveness and readiness probes on
# the same endpoint); this serves `docker run` users.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["python", "-m", "databuild.operator"]
# No --namespace: every namespace. The chart passes its own arguments.
CMD ["--health-port=8080", "--metrics-port=9090"]
