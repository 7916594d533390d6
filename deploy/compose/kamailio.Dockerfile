# The example PBX of deploy/docker-compose.yml: Kamailio from Debian bookworm
# with the modules deploy/pbx/kamailio/kamailio.cfg loads (http_client is in
# the utils modules, jansson in the extra modules).
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        kamailio kamailio-utils-modules kamailio-extra-modules \
    && rm -rf /var/lib/apt/lists/*
USER kamailio
EXPOSE 5060/udp 5060/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT []
CMD ["kamailio", "-DD", "-E", "-f", "/etc/kamailio/kamailio.cfg"]
