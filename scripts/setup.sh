#!/usr/bin/env bash
# Installs what building and testing FCP needs on a fresh Debian machine.
# Idempotent; needs root for apt-get (skipped with a note otherwise).
set -euo pipefail

# Debian packages the tests need.
# systemd: systemd-analyze, which verifies systemd/fcpd.service (supervisor/tests/systemd_unit.rs).
# bubblewrap: the baseline the jail's cold-start benchmark is measured against.
PACKAGES=(pkg-config build-essential systemd bubblewrap)
# swtpm, swtpm-tools, tpm2-tools: the TPM simulator each fcp-attest test starts, and the
# independent quote verifier it is checked against; libtss2-dev: the TSS2 ESAPI tss-esapi links.
PACKAGES+=(swtpm swtpm-tools tpm2-tools libtss2-dev)
# nftables: fcpd's egress table (nft); iproute2: the egress tests' "internet" namespace.
PACKAGES+=(nftables iproute2)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "setup: not root; please install: ${missing[*]}" >&2
  fi
fi

# cargo-fuzz, for the fuzz targets (built with the machine's own toolchain).
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
echo "setup: ok"
