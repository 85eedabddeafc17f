# A stand-in Raspberry Pi for CI: a real OpenSSH server with a `pi` user, key-only login, and what
# a stock Raspberry Pi OS brings (python3, gcc, iproute2, procps, sudo; tcpdump for captures;
# iptables for --net, which tests start with NET_ADMIN, as a Pi whose pi is root through sudo).
# A second login, `student`, has no sudo: --net's refusal is tested with it.
# Debian bullseye, which Raspberry Pi OS 11 is built on: its Python 3.9 is the oldest the programs
# echolab ships to a Pi must run on, so that promise is exercised here, not only grammar-checked.
# It needs no build context:
#   docker build -t echolab-pi-standin - < docker/sshd.Dockerfile
# Host keys are generated when the container starts, so every stand-in has keys of its own. Log in
# with a key installed for pi afterwards, e.g.
#   docker exec -i CONTAINER install -o pi -g pi -m 600 /dev/stdin /home/pi/.ssh/authorized_keys < KEY.pub
FROM debian:bullseye-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        openssh-server python3 gcc libc6-dev iproute2 procps sudo tcpdump iptables \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/ssh/ssh_host_*
# Like Raspberry Pi OS: pi may sudo without a password; the account has no password at all.
RUN useradd --create-home --shell /bin/bash pi \
 && install -d -o pi -g pi -m 700 /home/pi/.ssh \
 && useradd --create-home --shell /bin/bash student \
 && install -d -o student -g student -m 700 /home/student/.ssh \
 && echo 'pi ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/010_pi-nopasswd \
 && chmod 440 /etc/sudoers.d/010_pi-nopasswd \
 && printf '%s\n' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'PermitRootLogin no' \
        'AllowUsers pi student' >/etc/ssh/sshd_config.d/echolab.conf \
 && mkdir -p /run/sshd
LABEL org.echolab.run=image \
      org.echolab.role=pi-standin
EXPOSE 22
# -e: sshd logs to stderr, so `docker logs` shows refused logins.
CMD ["sh", "-c", "ssh-keygen -A && exec /usr/sbin/sshd -D -e"]
