#!/usr/bin/env bash
# Turns every "BEHAVIOUR §n" citation in doc comments (`///`, `//!`) and in the Markdown chapters
# under src/ that the docs include, into an intra-doc link to
# that section of the in-repository contract, BEHAVIOUR.md, which the core crate renders as its
# `behaviour` module: `[BEHAVIOUR §1](crate::behaviour#1-tcpsocket)` inside the core's library,
# `sockstate::behaviour` in every other crate. A list ("BEHAVIOUR §0, §1") links each section.
# In the Markdown files at the root (README.md, BENCHMARKS.md, ...) the citations become
# relative links to BEHAVIOUR.md. Plain `//` comments are left alone (nothing renders them).
#
# Idempotent: a citation already inside a link is not touched, so running it again changes
# nothing. Usage: scripts/link-behaviour-citations.sh [ROOT] (default: the repository root).
set -euo pipefail
root=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
cd "$root"

# rustdoc's and GitHub's anchors for the headings of BEHAVIOUR.md ("## 1. TCPSocket" ...).
export ANCHORS='0=0-everywhere 1=1-tcpsocket 2=2-tcpserversocket 3=3-udpsocket 4=4-errors 5=5-trust'
for n in 0 1 2 3 4 5; do
  anchor=$(tr ' ' '\n' <<<"$ANCHORS" | sed -n "s/^$n=//p")
  grep -q "^## $n\. " BEHAVIOUR.md || { echo "BEHAVIOUR.md has no section $n ($anchor)" >&2; exit 1; }
done

# $1: the link target for the files that follow ("crate::behaviour", "BEHAVIOUR.md", ...);
# $2: "doc" to rewrite doc-comment lines only, "all" for every line (Markdown).
link() {
  local target=$1 scope=$2; shift 2
  (($#)) || return 0
  TARGET=$target SCOPE=$scope perl -CSD -Mutf8 -i -pe '
    BEGIN { %a = map { split /=/ } split / /, $ENV{ANCHORS}; $t = $ENV{TARGET}; }
    $fence = 0 if $. == 1;
    # Code blocks (``` fences, in Markdown or in doc comments) are left as they are.
    if (m{^\s*(?://[/!])?\s*```}) { $fence = !$fence; }
    elsif (!$fence && ($ENV{SCOPE} eq "all" || m{^\s*//[/!]})) {
      # The first section of a citation, unless already the text of a link.
      s{(?<!\[)BEHAVIOUR §([0-5])(?![0-9])}{[BEHAVIOUR §$1]($t#$a{$1})}g;
      # Further sections of the same list: ", §n" right after a link made above (or before).
      1 while s{(\]\(\Q$t\E#[0-9a-z-]+\)), §([0-5])(?![0-9])}{$1, [§$2]($t#$a{$2})}g;
    }
    close ARGV if eof; # so that $. counts from 1 in the next file
  ' "$@"
}

# The Rust files under the given folders (those that exist), build output left out.
rs() {
  local dirs=() d
  for d in "$@"; do [ -d "$d" ] && dirs+=("$d"); done
  ((${#dirs[@]})) || return 0
  find "${dirs[@]}" -name target -prune -o -name '*.rs' -type f -print | sort
}

# The core's library: `crate::behaviour`.
mapfile -t core_lib < <(rs src)
link crate::behaviour doc "${core_lib[@]}"
# The core's tests and examples and the driver: `sockstate::behaviour`. (sockcat cites none;
# it reaches the core only through the driver.)
mapfile -t others < <(rs tests examples benches driver)
link sockstate::behaviour doc "${others[@]}"
# Markdown chapters the crates include as docs (`#[doc = include_str!("io_layer.md")]`): every
# line is documentation.
mapfile -t core_md < <(find src -name '*.md' -type f | sort)
link crate::behaviour all "${core_md[@]}"
if [ -d driver/src ]; then
  mapfile -t driver_md < <(find driver/src -name '*.md' -type f | sort)
  link sockstate::behaviour all "${driver_md[@]}"
fi
# Markdown at the root (not the contract itself, nor the changelog's history).
mapfile -t md < <(ls -- *.md | grep -vx 'BEHAVIOUR.md\|CHANGELOG.md' || true)
link BEHAVIOUR.md all "${md[@]}"
