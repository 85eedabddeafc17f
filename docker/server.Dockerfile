# The echo server's host: Debian's python3, iproute2 (ss, nstat), the lab's Python echo programs
# and its C programs. Build from the repository root:
#   docker build -f docker/server.Dockerfile -t echolab-server .
# The container idles; the harness starts the server in it with `docker exec`, e.g.
#   docker exec CONTAINER python3 -m echo.server --port 8888
#   docker exec CONTAINER /opt/echolab/bin/server --port 8888

# --- build stage: the C programs, compiled as the lab does ------------------------------------
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
LABEL org.echolab.run=image \
      org.echolab.role=server
# tini is PID 1: it reaps whatever exec'd processes leave behind and passes SIGTERM on, so
# `docker stop` returns at once (a bare `sleep` as PID 1 would ignore SIGTERM for 10 s).
# -s keeps it working as a subreaper under `docker run --init` too.
ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
CMD ["sleep", "infinity"]
