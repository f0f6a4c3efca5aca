# The bridge in a container image:
#
#   docker build -t statsd-bridge .        (or: podman build -t statsd-bridge ., buildah bud -t statsd-bridge .)
#
# The entry point is the bridge, so the image takes statsd_exporter's arguments as they are
# (the prometheus-community Helm chart's included): docs/deployment.md.
# BASE is any Debian-like image with python3 and its venv module (3.10 to 3.13). 3.11 by default: the
# Python of the Debian base the suite builds this file on, and the fastest of the four on the mixed load
# (docs/performance.md).
ARG BASE=python:3.11-slim

# Build: the wheel, then a venv holding it and its runtime dependencies, nothing else.
FROM ${BASE} AS build
# a package index or its certificate authority other than the default, for builds behind a mirror or proxy
ARG PIP_INDEX_URL
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge bridge
RUN python3 -m venv /opt/statsd-bridge \
    && /opt/statsd-bridge/bin/pip wheel --quiet --no-deps --wheel-dir /wheels . \
    && /opt/statsd-bridge/bin/pip install --quiet /wheels/*.whl \
    && /opt/statsd-bridge/bin/pip uninstall --quiet --yes pip setuptools

# Run: the venv and the shipped mapping files on a clean base, as an unprivileged user.
FROM ${BASE}
ARG VERSION=0.1.0
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.title="statsd-bridge" \
      org.opencontainers.image.description="StatsD and DogStatsD in, Prometheus out: a statsd_exporter drop-in" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/statsd-bridge /opt/statsd-bridge
COPY mappings /usr/share/statsd-bridge/mappings
# the modules were compiled at install: nothing to write on a read-only root file system
ENV PATH=/opt/statsd-bridge/bin:${PATH} PYTHONDONTWRITEBYTECODE=1
# nobody, as in the prom/statsd-exporter image: numeric, so Kubernetes' runAsNonRoot can check it
USER 65534:65534
# StatsD over UDP and TCP, the metrics and status page over HTTP
EXPOSE 9125/udp 9125/tcp 9102/tcp
ENTRYPOINT ["statsd-bridge"]
