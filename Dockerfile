# pushgw container: built on Debian bookworm, run as a non-root user with only
# the runtime libraries. Config and keys are mounted read-only at /etc/pushgw;
# the device registry lives on the /var/lib/pushgw volume.
#
# The build stage is scripts/container-build-check.sh, and `make test` runs
# that script on a clean copy of the tree: it copies what the COPY lines below
# name, runs the same build, and checks RUNTIME_PACKAGES against the libraries
# the binary links. Keep COPY lines one source list and one destination each.
#
#   docker build -t pushgw .
#   docker run --stop-timeout 15 -p 8080:8080 \
#     -v "$PWD/etc:/etc/pushgw:ro" -v pushgw-data:/var/lib/pushgw pushgw
#
# Stop grace: SIGTERM drains for up to shutdown_grace_s (default 10 s), so
# give the runtime more than that before SIGKILL (docker --stop-timeout,
# compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
WORKDIR /src
COPY Makefile ./
COPY scripts ./scripts
COPY include ./include
COPY gateway ./gateway
RUN scripts/container-build-check.sh stage

FROM ${DEBIAN_IMAGE}
ARG RUNTIME_PACKAGES="libmicrohttpd12 libnghttp2-14 libssl3 libjansson4 libjwt0 libsqlite3-0 libcurl4 libgnutls30 libpq5 libsofia-sip-ua0 ca-certificates"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/pushgw --create-home \
               --shell /usr/sbin/nologin pushgw
COPY --from=build /src/build/pushgw /usr/local/bin/pushgw
COPY --chmod=0755 deploy/container/healthcheck.sh /usr/local/bin/pushgw-healthcheck
USER 10001:10001
WORKDIR /var/lib/pushgw
VOLUME ["/var/lib/pushgw"]
ENV PUSHGW_CONFIG=/etc/pushgw/pushgw.json \
    PUSHGW_LISTEN=0.0.0.0:8080 \
    PUSHGW_REGISTRY_PATH=/var/lib/pushgw/pushgw.db
# 8080: the HTTP API; 5060 (UDP and TCP) and 5061 (TLS): the SIP edge, when
# the config has a "sip" section listening there
EXPOSE 8080 5060/udp 5060/tcp 5061/tcp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/pushgw-healthcheck"]
ENTRYPOINT ["/usr/local/bin/pushgw"]
