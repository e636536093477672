#!/usr/bin/env bash
# The ~1 MB English text of the nanoGPT yardstick: Debian's `fortunes` collection (quotations,
# literature, science, humour; plain text), concatenated in a fixed order and cut to 1,000,000
# bytes of ASCII. Reproducible from the Debian package; nothing is downloaded but that package.
# Usage: trainer/scripts/nanogpt_text.sh OUT.txt
set -euo pipefail
out=${1:?usage: nanogpt_text.sh OUT.txt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download fortunes >/dev/null 2>&1 && dpkg -x fortunes_*.deb x)
dir="$tmp/x/usr/share/games/fortunes"
# skip the ASCII-art files (pictures, not prose)
for f in $(ls "$dir" | grep -v -e '\.dat$' -e '\.u8$' -e '^art$' -e '^ascii-art$' | sort); do
  cat "$dir/$f"
done | LC_ALL=C tr -cd '\11\12\40-\176' > "$tmp/all.txt"
head -c 1000000 "$tmp/all.txt" > "$out"
echo "$out: $(wc -c < "$out") bytes, $(LC_ALL=C fold -w1 "$out" | sort -u | wc -l) distinct characters"
