# pushgw container: build on Debian bookworm, run as a non-root user with only
# the runtime libraries. Config and keys are mounted read-only at /etc/pushgw.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config libmicrohttpd-dev libnghttp2-dev libssl-dev \
        libjansson-dev libjwt-dev libsqlite3-dev libcurl4-openssl-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY scripts ./scripts
COPY gateway ./gateway
COPY include ./include
COPY tests/sim ./tests/sim
RUN make -j"$(nproc)" build/pushgw

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libmicrohttpd12 libnghttp2-14 libssl3 libjansson4 libjwt0 libsqlite3-0 libcurl4 \
        ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/pushgw --create-home pushgw
COPY --from=build /src/build/pushgw /usr/local/bin/pushgw
USER pushgw
WORKDIR /var/lib/pushgw
ENV PUSHGW_CONFIG=/etc/pushgw/pushgw.json \
    PUSHGW_LISTEN=0.0.0.0:8080 \
    PUSHGW_REGISTRY_PATH=/var/lib/pushgw/pushgw.db
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/pushgw"]
