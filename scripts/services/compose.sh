#!/usr/bin/env bash
# Makes a Docker Compose v2 tool available for the compose test (tests/tests/compose.rs), which
# validates docker-compose.yml. Meant to be sourced:
#
#     source scripts/services/compose.sh     # from scripts/test.sh, or by hand
#
# - `docker compose` (the plugin) or a `docker-compose` of version 2 already installed: used.
# - Otherwise Debian's docker-compose 2.26.1 package (a static build of Compose v2) is fetched
#   once from deb.debian.org, checked against its SHA-256, unpacked under
#   $CFLOGS_TOOLS_DIR (default /var/tmp/cflogs-tools) and put first on PATH as `docker-compose`.
#   Nothing is installed system-wide. Bookworm's own docker-compose is Compose v1, which does
#   not implement the Compose specification the file uses.
#
# Only the client is needed: `docker compose config` parses, interpolates and validates the file
# without a Docker engine. Returns 1 with a message when no tool can be had; the compose test
# then fails and says what to install.

cflogs_compose_tool() {
  local tools="${CFLOGS_TOOLS_DIR:-/var/tmp/cflogs-tools}"
  local version="2.26.1-4"
  local sha256="47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea"
  local url="http://deb.debian.org/debian/pool/main/d/docker-compose/docker-compose_${version}_amd64.deb"
  local dir="$tools/docker-compose-$version" deb

  if docker compose version >/dev/null 2>&1; then
    echo "compose.sh: using the docker compose plugin" >&2
    return 0
  fi
  if docker-compose version 2>/dev/null | grep -q 'version v\?2\.'; then
    echo "compose.sh: using $(command -v docker-compose)" >&2
    return 0
  fi
  if [[ ! -x "$dir/bin/docker-compose" ]]; then
    if ! command -v dpkg-deb >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
      echo "compose.sh: no Compose v2 tool, and no curl/dpkg-deb to fetch Debian's; install" \
        "the docker compose plugin" >&2
      return 1
    fi
    echo "compose.sh: fetching Docker Compose $version (Debian) into $dir" >&2
    mkdir -p "$tools" || return 1
    deb="$(mktemp "$tools/docker-compose.XXXXXX.deb")"
    if ! curl -fsSL --retry 3 -o "$deb" "$url"; then
      echo "compose.sh: downloading $url failed; install the docker compose plugin" >&2
      rm -f "$deb"
      return 1
    fi
    if [[ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$sha256" ]]; then
      echo "compose.sh: $url does not have the expected SHA-256; not using it" >&2
      rm -f "$deb"
      return 1
    fi
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin" &&
      dpkg-deb -x "$deb" "$dir.tmp/root" &&
      mv "$dir.tmp/root/usr/libexec/docker/cli-plugins/docker-compose" "$dir.tmp/bin/" &&
      rm -rf "$dir.tmp/root" && mv "$dir.tmp" "$dir" || {
        echo "compose.sh: unpacking $deb failed" >&2
        rm -f "$deb"
        return 1
      }
    rm -f "$deb"
  fi
  export PATH="$dir/bin:$PATH"
  echo "compose.sh: using $("$dir/bin/docker-compose" version)" >&2
}

cflogs_compose_tool
