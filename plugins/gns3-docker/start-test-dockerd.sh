#!/bin/sh
# Start or stop a private Docker Engine for tests/CI, everything under DIR (data root, exec root, pidfile, socket).
# No iptables rules, no docker0 bridge, vfs storage (works on any filesystem). Stopped by PID, with its containerd.
#   plugins/gns3-docker/start-test-dockerd.sh start /tmp/gns3-dockerd   -> prints: export DOCKER_HOST=unix://...
#   plugins/gns3-docker/start-test-dockerd.sh stop  /tmp/gns3-dockerd
# (tests/docker starts its own engine the same way; this is for running the server or the bench by hand.)
set -eu
[ $# -eq 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

case "$action" in
start)
    mkdir -p "$dir/root" "$dir/exec"
    setsid dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none --ip-forward=false \
        --ip-masq=false --data-root="$dir/root" --exec-root="$dir/exec" --pidfile="$dir/docker.pid" \
        --host="unix://$dir/docker.sock" </dev/null >"$dir/dockerd.log" 2>&1 &
    echo $! >"$dir/dockerd.launcher-pid"
    i=0
    until [ -S "$dir/docker.sock" ] && [ -s "$dir/docker.pid" ]; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$(cat "$dir/dockerd.launcher-pid")" 2>/dev/null; then
            echo "dockerd did not start; its log:" >&2
            tail -n 20 "$dir/dockerd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "export DOCKER_HOST=unix://$dir/docker.sock"
    ;;
stop)
    pid=$(cat "$dir/docker.pid" 2>/dev/null || cat "$dir/dockerd.launcher-pid" 2>/dev/null || true)
    [ -n "$pid" ] || exit 0
    children=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)
    kill "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    for child in $children; do  # containerd normally exits with dockerd; make sure, by PID
        kill "$child" 2>/dev/null || true
    done
    # dockerd bind-mounts its data root on itself; a daemon stopped early in its start-up can leave that behind
    if mountpoint -q "$dir/root" 2>/dev/null; then umount "$dir/root" || true; fi
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
