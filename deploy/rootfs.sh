#!/usr/bin/env bash
# Builds the base image for the lab's routers and firewalled nodes without
# pulling anything: a minimal Debian root filesystem made with debootstrap
# from the mirror apt already uses, then `docker import`ed as
# strata-lab-base:bookworm. The image is kept, so repeated runs are fast;
# FORCE=1 rebuilds it.
set -euo pipefail
IMAGE=${BASE_IMAGE:-strata-lab-base:bookworm}
if [ -z "${FORCE:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "rootfs: $IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "rootfs: installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi
# The mirror apt uses (deb822 sources or the one-line format).
MIRROR=${MIRROR:-$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)}
MIRROR=${MIRROR:-$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
DIR=$(mktemp -d /var/tmp/strata-rootfs.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
echo "rootfs: debootstrap bookworm from $MIRROR (a few minutes, once)"
debootstrap --variant=minbase --include=iptables,iproute2,iputils-ping bookworm "$DIR" "$MIRROR" >/dev/null
rm -rf "$DIR"/var/cache/apt/archives/*.deb "$DIR"/var/lib/apt/lists/*
tar -C "$DIR" -c . | docker import - "$IMAGE" >/dev/null
echo "rootfs: built $IMAGE"
