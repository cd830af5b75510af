#!/usr/bin/env bash
# System packages a fresh Debian machine needs to build and run nanoserve.
# Installs only what is missing, so repeated runs cost nothing. chromium: the dashboard's browser
# tests and `make screenshots` drive it (Playwright's Python API, no browser download).
set -euo pipefail
need=()
for cmd in gcc g++ cmake make chromium; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done
[ ${#need[@]} -eq 0 ] && exit 0
pkgs=()
for cmd in "${need[@]}"; do
  case "$cmd" in
    gcc|g++|make) pkgs+=(build-essential) ;;
    cmake) pkgs+=(cmake) ;;
    chromium) pkgs+=(chromium) ;;
  esac
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${pkgs[@]}"
