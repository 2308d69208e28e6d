#!/usr/bin/env bash
# sandbox-stack: parent=base
# description: Go (official go.dev release) with golangci-lint and govulncheck
#
# Runs as root in a clone of golden-base. Go goes to /usr/local/go (checksum-verified tarball),
# golangci-lint and govulncheck to /usr/local/bin; /etc/profile.d/go.sh puts /usr/local/go/bin and
# ~/go/bin on PATH. Re-runnable: Go is replaced only when GO_VERSION changes, tools are refreshed.
set -euo pipefail
STACK=go
# The Go release to install; "latest" asks go.dev for the current one at build time.
GO_VERSION=${GO_VERSION:-1.27.3}

# The helpers and checks every stack shares (step, die, fetch, apt_install, as_ubuntu, ARCH, TMP…).
# shellcheck source=lib/prelude.sh
. "${SANDBOX_PRELUDE:-$(dirname "$0")/lib/prelude.sh}"

step "go stack on ${PRETTY_NAME:-$ID} ($ARCH)"

step "installing prerequisites"
apt_update
apt_install ca-certificates curl git build-essential pkg-config

if [ "$GO_VERSION" = latest ]; then
  GO_VERSION=$(fetch 'https://go.dev/VERSION?m=text' | head -1)
  GO_VERSION=${GO_VERSION#go}
fi
case "$GO_VERSION" in [0-9]*.[0-9]*) ;; *) die "GO_VERSION '$GO_VERSION' is not a Go version like 1.27.3" ;; esac

if [ -x /usr/local/go/bin/go ] && [ "$(/usr/local/go/bin/go env GOVERSION)" = "go$GO_VERSION" ]; then
  step "Go $GO_VERSION is already installed in /usr/local/go"
else
  file="go${GO_VERSION}.linux-${ARCH}.tar.gz"
  step "downloading Go $GO_VERSION ($file)"
  fetch "https://go.dev/dl/$file" -o "$TMP/$file"
  want=$(fetch "https://dl.google.com/go/$file.sha256" | awk '{print $1}')
  [ "${#want}" -eq 64 ] || die "could not get the SHA-256 of $file"
  echo "$want  $TMP/$file" | sha256sum -c --quiet - || die "checksum mismatch for $file"
  step "installing Go $GO_VERSION into /usr/local/go"
  rm -rf /usr/local/go
  tar -C /usr/local -xzf "$TMP/$file"
fi
/usr/local/go/bin/go version

step "writing /etc/profile.d/go.sh"
cat > /etc/profile.d/go.sh <<'EOF'
# Go toolchain (/usr/local/go) and binaries from `go install` (~/go/bin).
for _d in /usr/local/go/bin "$HOME/go/bin"; do
  case ":$PATH:" in *":$_d:"*) ;; *) PATH="$PATH:$_d" ;; esac
done
unset _d
export PATH
EOF

# Build-time Go environment: throwaway GOPATH/cache, results into /usr/local/bin.
export PATH="/usr/local/go/bin:$PATH" GOPATH="$TMP/gopath" GOCACHE="$TMP/gocache" GOFLAGS=-modcacherw

step "installing golangci-lint (latest release) into /usr/local/bin"
# The official installer downloads the release binary and verifies its checksum.
fetch https://golangci-lint.run/install.sh -o "$TMP/golangci-install.sh" \
  || fetch https://raw.githubusercontent.com/golangci/golangci-lint/HEAD/install.sh -o "$TMP/golangci-install.sh"
sh "$TMP/golangci-install.sh" -b /usr/local/bin
golangci-lint --version

step "installing govulncheck into /usr/local/bin"
GOBIN=/usr/local/bin go install golang.org/x/vuln/cmd/govulncheck@latest
govulncheck -version

printf '%s\n' "$STACK" > /etc/sandbox-stack

step "cleaning caches"
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache /root/go
step "go stack ready"
