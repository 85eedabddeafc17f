# The echo client's host: Debian's python3, iproute2 (ss, nstat), the lab's Python echo programs,
# its C programs and the harness's socket probe (stdlib only). Build from the repository root:
#   docker build -f docker/client.Dockerfile -t echolab-client .
# The container idles; the harness runs probes and clients in it with `docker exec`, e.g.
#   docker exec -i CONTAINER python3 /opt/echolab/probe.py < request.json
#   docker exec CONTAINER /opt/echolab/bin/client --host SERVER --port 8888

# --- build stage: the C programs, compiled as the lab does ------------------------------------
# (The same steps as in server.Dockerfile, so the two builds share these layers.)
FROM debian:bookworm-slim AS build
# Marks this stage's leftover (untagged) image for `docker image prune --filter label=org.echolab.run=build`.
LABEL org.echolab.run=build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY echo/server.c echo/client.c ./
RUN mkdir -p /out \
 && cc -Wall -Wextra -O2 -o /out/server server.c \
 && cc -Wall -Wextra -O2 -o /out/client client.c

# --- runtime stage: no compiler --------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 iproute2 tini \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONPATH=/opt/echolab \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/echolab
COPY --from=build /out/server /out/client /opt/echolab/bin/
COPY echo/*.py /opt/echolab/echo/
COPY harness/probe.py /opt/echolab/probe.py
LABEL org.echolab.run=image \
      org.echolab.role=client
# tini is PID 1: it reaps whatever exec'd processes leave behind and passes SIGTERM on, so
# `docker stop` returns at once. -s keeps it working as a subreaper under `docker run --init` too.
ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
CMD ["sleep", "infinity"]
