#!/usr/bin/env bash
# Build the three evaluation corpora from pinned Debian documentation packages (Debian 12).
#
#   bash benchmarks/rag/corpora/build.sh OUT_DIR
#
# OUT_DIR/git       git-doc: the man pages of the porcelain and ancillary commands and the guides
#                   (gittutorial, gitworkflows, gitignore, ...), as listed in git's own cmds-*.txt
# OUT_DIR/debian    debian-handbook (English): the book's chapters and sections, one HTML file each
# OUT_DIR/postgres  postgresql-doc-15: the SQL command reference (sql-*.html) and the tutorial;
#                   the HELD-OUT corpus (never tuned on; see README.md here)
# Each corpus is a folder of HTML files; a document is named by its file name.
#
# The packages are downloaded (`apt-get download`) and unpacked into a scratch directory, not
# installed: pinning postgresql-doc-15 through `apt-get install` made apt upgrade the machine's
# postgresql-15 and libpq to the same version. Root is needed only if the package lists lack the
# pinned versions (then `apt-get update` runs once).
set -euo pipefail
OUT=${1:?usage: build.sh OUT_DIR}
PACKAGES=(
  "git-doc=1:2.39.5-0+deb12u3"
  "debian-handbook=11.20220922"
  "postgresql-doc-15=15.20-0+deb12u1"
)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
download() { (cd "$SCRATCH" && apt-get download -q "${PACKAGES[@]}" >/dev/null 2>&1); }
if ! download; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -q
  download || (cd "$SCRATCH" && apt-get download -q "${PACKAGES[@]}")
fi
for deb in "$SCRATCH"/*.deb; do dpkg-deb -x "$deb" "$SCRATCH/root"; done
DOC=$SCRATCH/root/usr/share/doc

mkdir -p "$OUT/git" "$OUT/debian" "$OUT/postgres"
GIT=$DOC/git-doc
for list in mainporcelain ancillarymanipulators ancillaryinterrogators guide userinterfaces; do
  grep -o '^linkgit:[a-z-]*' "$GIT/cmds-$list.txt" | sed 's/^linkgit://'
done | sort -u | while read -r page; do
  [ -f "$GIT/$page.html" ] && cp "$GIT/$page.html" "$OUT/git/"
done
find "$DOC/debian-handbook/html/en-US" -maxdepth 1 -name '*.html' ! -name index.html \
  -exec cp {} "$OUT/debian/" \;
PG=$DOC/postgresql-doc-15/html
find "$PG" -maxdepth 1 \( -name 'sql-*.html' -o -name 'tutorial*.html' \) \
  ! -name sql-commands.html ! -name tutorial.html -exec cp {} "$OUT/postgres/" \;
for c in git debian postgres; do echo "$c: $(find "$OUT/$c" -name '*.html' | wc -l) files"; done
