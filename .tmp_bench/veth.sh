#!/bin/sh
# Runs inside `unshare -n`: this namespace is the client side; a named namespace is the server side.
set -e
NS=ts-load-$$
ip link set lo up
ip netns add $NS
trap 'kill $SRV 2>/dev/null; ip netns del $NS' EXIT
ip link add veth-cli type veth peer name veth-srv
ip link set veth-srv netns $NS
ip addr add 10.77.0.1/24 dev veth-cli && ip link set veth-cli up
ip netns exec $NS ip link set lo up
ip netns exec $NS ip addr add 10.77.0.2/24 dev veth-srv
ip netns exec $NS ip link set veth-srv up
ip netns exec $NS deno run -A --unstable-net taskserver/main.ts serve --host 10.77.0.2 --port 65432 --quiet &
SRV=$!
sleep 3
deno run -A --unstable-net taskserver/main.ts load 10.77.0.2:65432 "$@"
