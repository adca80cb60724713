# Sourced by the cluster scripts (cluster-demo.sh, bench-cluster.sh,
# bench-cluster-reference.sh): start the pinned servers scripts/setup.sh
# installs into .sluice/servers/bin on free loopback ports, and stop
# everything started here on exit. Needs `set -euo pipefail` and the
# repository root as the working directory.
#
#   servers_init            a scratch folder in $work, the exit trap
#   start_nats              nats-server with JetStream; sets $cluster
#   start_s3 BUCKET         SeaweedFS (`weed mini`) with one bucket and an
#                           S3 identity; sets $s3_endpoint and $filer, and
#                           exports the AWS_* variables sluice reads
#   start_workers N     N `sluice worker` nodes (w1..wN) x 1 instance on
#                       $cluster, run by $sluice, sharing $work/cache
#   s3_put FILE KEY         uploads FILE as s3://BUCKET/KEY (through the filer)
#   s3_get KEY FILE         downloads s3://BUCKET/KEY into FILE

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits up to 30 s for an HTTP URL to answer 2xx.
wait_http() {
    for _ in $(seq 300); do
        if python3 -c "import urllib.request; urllib.request.urlopen('$1', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$1 did not answer in 30 s" >&2
    return 1
}

servers_init() {
    work=$(mktemp -d)
    pids=()
    kill_pids=()
    trap servers_cleanup EXIT
}

servers_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # SeaweedFS does not stop on SIGTERM in reasonable time.
    for p in "${kill_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

start_nats() {
    local port monitor
    port=$(free_port)
    monitor=$(free_port)
    .sluice/servers/bin/nats-server -a 127.0.0.1 -p "$port" -m "$monitor" -js -sd "$work/nats" \
        >"$work/nats.log" 2>&1 &
    pids+=($!)
    # Ready when JetStream's monitoring endpoint answers.
    wait_http "http://127.0.0.1:$monitor/jsz"
    cluster="nats://127.0.0.1:$port"
}

start_s3() {
    local bucket=$1 p=() i
    for i in $(seq 10); do p+=("$(free_port)"); done
    mkdir -p "$work/s3/data"
    cat >"$work/s3/s3.json" <<EOF
{"identities":[{"name":"sluice","credentials":[{"accessKey":"sluice-bench","secretKey":"sluice-bench-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
    .sluice/servers/bin/weed mini -dir="$work/s3/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false \
        -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
        -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" \
        -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" \
        -filer.localSocket="$work/s3/filer.sock" -s3.localSocket="$work/s3/s3.sock" \
        -s3.config="$work/s3/s3.json" -bucket="$bucket" >"$work/s3/weed.log" 2>&1 &
    kill_pids+=($!)
    s3_bucket=$bucket
    s3_endpoint="http://127.0.0.1:${p[6]}"
    filer="http://127.0.0.1:${p[4]}"
    wait_http "$filer/buckets/"
    # The bucket is there once S3 answers for it (unsigned requests get
    # 403 until then 404/503; any answer but a refused connection will do
    # for the port, the bucket's own folder tells it exists).
    for _ in $(seq 300); do
        curl -sf "$filer/buckets/$bucket/" -H 'Accept: application/json' >/dev/null && break
        sleep 0.1
    done
    export AWS_ENDPOINT_URL=$s3_endpoint AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=sluice-bench AWS_SECRET_ACCESS_KEY=sluice-bench-secret
}

start_workers() {
    local i
    for i in $(seq "$1"); do
        SLUICE_LOG=warn "$sluice" worker --cluster "$cluster" --name "w$i" --max-concurrency 1 \
            --cache-dir "$work/cache" >"$work/w$i.log" 2>&1 &
        pids+=($!)
    done
}

s3_put() { curl -sf -X PUT --data-binary "@$1" "$filer/buckets/$s3_bucket/$2" >/dev/null; }
s3_get() { curl -sf -o "$2" "$filer/buckets/$s3_bucket/$1"; }

# CPU seconds (user + system) a running process has used so far.
proc_cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
