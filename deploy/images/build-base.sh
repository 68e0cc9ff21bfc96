#!/usr/bin/env bash
# Builds the Debian bookworm base image that every store image starts FROM, with no registry:
# debootstrap a minimal root filesystem, trim it, and `docker import` it.
#
# Cached: when the image exists this exits at once. Re-importing would give the image a new id and
# invalidate the build cache of every image built on it, so it is rebuilt only when missing
# (or with --force).
set -euo pipefail

TAG="${SHOPHOSTING_BASE_IMAGE:-shophosting/base:bookworm}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG is present"
    exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "debootstrap needs root" >&2; exit 1; }

# Use the mirror apt already uses on this machine: no other address is reachable or allowed.
MIRROR="${DEBIAN_MIRROR:-$( { grep -rhoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } \
    | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

ROOTFS="$(mktemp -d /tmp/shophosting-base.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap bookworm from $MIRROR (about 45 s)"
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/dev/null

# Trim what no store container needs; keep apt working for the Dockerfiles built on top.
rm -rf "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/log/*.log
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
cat > "$ROOTFS"/etc/apt/apt.conf.d/90shophosting <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
APT
cat > "$ROOTFS"/etc/dpkg/dpkg.cfg.d/90shophosting-nodoc <<'DPKG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
DPKG

tar --numeric-owner -C "$ROOTFS" -c . | docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
echo "built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%d MB", $1/1000000}'))"
