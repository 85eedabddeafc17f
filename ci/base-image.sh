#!/usr/bin/env bash
# Make sure a Debian base image exists locally (default debian:bookworm-slim, or the one named as
# the first argument, e.g. debian:bullseye-slim for the stand-in Pi); idempotent.
#
# The Dockerfiles stay ordinary (`FROM debian:bookworm-slim`). Where a registry is reachable the
# image is simply pulled. Where none is (this project's CI machines), an equivalent image is
# bootstrapped offline from Debian's package mirror with debootstrap and `docker import`ed under
# the same tag. Needs a running engine (ci/docker-engine.sh).
#
# Environment: BASE_IMAGE (default debian:bookworm-slim), DEBIAN_MIRROR
# (default http://deb.debian.org/debian), PULL_TIMEOUT (seconds, default 60).
set -euo pipefail

log() { printf 'ci: %s\n' "$*"; }

BASE_IMAGE=${1:-${BASE_IMAGE:-debian:bookworm-slim}}
SUITE=${BASE_IMAGE#debian:}  # debian:bullseye-slim -> bullseye
SUITE=${SUITE%-slim}
case "$SUITE" in
    bookworm | bullseye | trixie) ;;
    *) echo "ci: error: $BASE_IMAGE: only debian:<bookworm|bullseye|trixie>-slim can be bootstrapped" >&2; exit 2 ;;
esac
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PULL_TIMEOUT=${PULL_TIMEOUT:-60}

SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
fi

t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE is present; nothing to do"
    exit 0
fi

log "pulling $BASE_IMAGE (timeout ${PULL_TIMEOUT} s)"
if pull_out=$(timeout "$PULL_TIMEOUT" docker pull -q "$BASE_IMAGE" 2>&1); then
    log "pulled $BASE_IMAGE in $(elapsed)"
    exit 0
fi
log "pull failed ($(printf '%s' "$pull_out" | tail -n 1 | cut -c1-160)); bootstrapping $BASE_IMAGE offline"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 debootstrap >/dev/null 2>&1
fi

ROOTFS=$(mktemp -d "${TMPDIR:-/var/tmp}/echolab-rootfs.XXXXXX")
DBLOG=$(mktemp "${TMPDIR:-/var/tmp}/echolab-debootstrap.XXXXXX")
cleanup() {
    # Unmount anything debootstrap may have left mounted inside (proc, sys, ...), deepest first,
    # so that the removal never walks into the host's /proc or /sys.
    if [ -n "${ROOTFS:-}" ] && [ -d "$ROOTFS" ]; then
        awk -v r="$ROOTFS" 'index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r |
            while read -r m; do "${SUDO[@]}" umount -l "$m" 2>/dev/null || true; done
        "${SUDO[@]}" rm -rf --one-file-system "$ROOTFS"
    fi
    rm -f "${DBLOG:-}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR"
tb=$(date +%s)
if ! "${SUDO[@]}" debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR" >"$DBLOG" 2>&1; then
    echo "ci: error: debootstrap failed; last lines of its output follow" >&2
    tail -n 25 "$DBLOG" >&2
    if [ -f "$ROOTFS/debootstrap/debootstrap.log" ]; then tail -n 25 "$ROOTFS/debootstrap/debootstrap.log" >&2; fi
    exit 1
fi
log "debootstrap done in $(( $(date +%s) - tb )) s"

# Make the tree behave like Docker's debian:bookworm-slim for Dockerfiles: the same apt sources
# (main, updates, security) in deb822 form, and debuerreotype's slim settings (no docs, man pages
# or translations installed; apt caches cleaned after each install; suggests not kept by autoremove).
"${SUDO[@]}" sh -e -s "$ROOTFS" "$SUITE" <<'EOS'
r=$1
suite=$2
rm -f "$r/etc/apt/sources.list"
mkdir -p "$r/etc/apt/sources.list.d" "$r/etc/apt/apt.conf.d" "$r/etc/dpkg/dpkg.cfg.d"
cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests" <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF
cat >"$r/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
cat >"$r/etc/apt/apt.conf.d/docker-gzip-indexes" <<'EOF'
Acquire::GzipIndexes "true";
EOF
cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
# What the slim image does not carry: docs, man pages, locales, apt lists and caches, logs.
find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$r/usr/share/man/"* "$r/usr/share/info/"* "$r/usr/share/groff/"* "$r/usr/share/lintian/"*
find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$r/var/lib/apt/lists/"* "$r/var/cache/apt/"*.bin "$r/var/cache/apt/archives/"*.deb
rm -rf "$r/var/log/"*.log "$r/var/log/apt/"* "$r/tmp/"* "$r/root/.bash_history"
mkdir -p "$r/var/lib/apt/lists/partial"
# Docker provides these at run time.
rm -rf "$r/dev/"* "$r/proc/"* "$r/sys/"* "$r/run/"*
: >"$r/etc/hostname"
rm -f "$r/etc/resolv.conf"
EOS

log "importing the tree as $BASE_IMAGE"
ti=$(date +%s)
# No org.echolab.run label: every image built FROM this one, a user's own included, would inherit it.
image_id=$("${SUDO[@]}" tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase $SUITE (offline stand-in for $BASE_IMAGE)" \
    - "$BASE_IMAGE")
image_id=${image_id#sha256:}
log "imported in $(( $(date +%s) - ti )) s: $BASE_IMAGE ${image_id:0:12}"
size=$(docker image inspect --format '{{.Size}}' "$BASE_IMAGE")
log "base image $BASE_IMAGE ready: $(( size / 1000000 )) MB, $(elapsed) in all"
