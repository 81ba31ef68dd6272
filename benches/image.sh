#!/usr/bin/env bash
# The image pipeline measured through the real agent: `ferric-agent`
# (release build) writes 2 GiB images served over loopback HTTP into disk
# files, by IPA's `standby.prepare_image` on its command API, side by side
# with what an operator would use instead. Prints a Markdown table.
#
#   benches/image.sh [WORKDIR]     (needs ~12 GB free in WORKDIR; default /tmp)
#
# Each agent write gets an image id of its own: the agent, as IPA, skips
# writing an image id it has just written. Cases, each run twice:
#   raw     2 GiB of random data      vs  curl -s URL | dd of=F bs=4M conv=fsync
#   qcow2   2 GiB, half zero clusters vs  qemu-img convert -O raw (local file) + sync
#   zeros   2 GiB, 128 MiB of data    vs  curl -s URL | dd of=F bs=4M conv=fsync
#   sha256  2 GiB file                vs  sha256sum
# and the agent's peak RSS (VmHWM) over all its writes.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp}/ferric-image-bench"
rm -rf "$work" && mkdir -p "$work/www"
cd "$work"
cleanup() {
    [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null || true
    [ -n "${http_pid:-}" ] && kill "$http_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && cargo build -q --release -p ferric-agent && cargo build -q --release -p ferric-image --example stream_bench)
agent="$repo/target/release/ferric-agent"
bench="$repo/target/release/examples/stream_bench"

echo "making the images" >&2
head -c $((2 << 30)) /dev/urandom > www/random.raw
echo 'start=2048, type=83' | sfdisk -q www/random.raw
cp www/random.raw half.raw
dd if=/dev/zero of=half.raw bs=1M seek=1024 count=1024 conv=notrunc status=none
qemu-img convert -q -f raw -O qcow2 half.raw www/half.qcow2
rm half.raw
truncate -s 2G www/zeros.raw
head -c $((128 << 20)) /dev/urandom | dd of=www/zeros.raw bs=1M seek=512 conv=notrunc status=none
echo 'start=2048, type=83' | sfdisk -q www/zeros.raw
cp www/half.qcow2 local.qcow2
sync

python3 -m http.server 18999 --bind 127.0.0.1 --directory www >/dev/null 2>&1 &
http_pid=$!
token=bench-token-0123456789abcdef0123456789abcdef
echo "ipa-agent-token=$token" > cmdline
truncate -s 8G disk.img
"$agent" --disk "$work/disk.img" --listen 127.0.0.1:19999 --no-tls --cmdline "$work/cmdline" >agent.log 2>&1 &
agent_pid=$!
sleep 1

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

agent_write() { # name format
    local sha; sha=$(sha256sum "www/$1" | cut -d' ' -f1)
    rm -f disk.img && truncate -s 8G disk.img
    sync
    local t0; t0=$(now)
    curl -sf -X POST "http://127.0.0.1:19999/v1/commands/?wait=true&agent_token=$token" \
        -H 'Content-Type: application/json' \
        -d "{\"name\": \"standby.prepare_image\", \"params\": {\"image_info\": {\"id\": \"$1-$RANDOM\", \"urls\": [\"http://127.0.0.1:18999/$1\"], \"disk_format\": \"$2\", \"os_hash_algo\": \"sha256\", \"os_hash_value\": \"$sha\", \"stream_raw_images\": true}}}" \
        > result.json
    local t1; t1=$(now)
    grep -q '"SUCCEEDED"' result.json || { echo "agent write of $1 failed: $(cat result.json)" >&2; exit 1; }
    elapsed "$t0" "$t1"
}

curl_dd() {
    rm -f out.img; sync
    local t0; t0=$(now)
    curl -s "http://127.0.0.1:18999/$1" | dd of=out.img bs=4M conv=fsync status=none
    local t1; t1=$(now)
    elapsed "$t0" "$t1"
}

qemu_convert() {
    rm -f out.img; sync
    local t0; t0=$(now)
    qemu-img convert -q -f qcow2 -O raw local.qcow2 out.img && sync
    local t1; t1=$(now)
    elapsed "$t0" "$t1"
}

timed() { local t0; t0=$(now); "$@" >/dev/null 2>&1; local t1; t1=$(now); elapsed "$t0" "$t1"; }

row() { printf '| %s | %s s, %s s | %s s, %s s |\n' "$1" "$2" "$3" "$4" "$5"; }

echo "| case | ferric-agent | what a user would run instead |"
echo "|---|---|---|"
row "2 GiB raw (random) over HTTP into a file, sha256 verified, fsync | \`curl \| dd bs=4M conv=fsync\`" \
    "$(agent_write random.raw raw)" "$(agent_write random.raw raw)" "$(curl_dd random.raw)" "$(curl_dd random.raw)"
row "2 GiB qcow2 (half zero clusters, $(du -m www/half.qcow2 | cut -f1) MiB file) over HTTP, to raw | \`qemu-img convert -O raw\` from a local file, then sync" \
    "$(agent_write half.qcow2 qcow2)" "$(agent_write half.qcow2 qcow2)" "$(qemu_convert)" "$(qemu_convert)"
row "2 GiB raw, 128 MiB of data, rest zeros | \`curl \| dd bs=4M conv=fsync\`" \
    "$(agent_write zeros.raw raw)" "$(agent_write zeros.raw raw)" "$(curl_dd zeros.raw)" "$(curl_dd zeros.raw)"
row "sha256 of a 2 GiB file (Ferric's hasher) | \`sha256sum\`" \
    "$(timed "$bench" sha256 www/random.raw)" "$(timed "$bench" sha256 www/random.raw)" \
    "$(timed sha256sum www/random.raw)" "$(timed sha256sum www/random.raw)"
echo
echo "agent peak RSS (VmHWM) over all writes: $(grep VmHWM /proc/$agent_pid/status | awk '{print $2/1024 " MiB"}')"
echo "agent binary (stripped): $(strip -o stripped "$agent" && stat -c%s stripped | awk '{printf "%.2f MiB", $1/1048576}')"
