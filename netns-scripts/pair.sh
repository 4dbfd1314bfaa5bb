#!/bin/sh
# The two-namespace topology every kharness TCP case uses, built by hand with
# iproute2: namespaces NAME-client and NAME-server joined by veth0<->veth0,
# 198.18.0.1/24 + 2001:db8::1/64 on the client, .2 / ::2 on the server.
#
#   netns-scripts/pair.sh up   [NAME]    create it (NAME defaults to khpair)
#   netns-scripts/pair.sh down [NAME]    delete it
#
# Then, for example:
#   ip netns exec khpair-client ping -c1 198.18.0.2
#   ip netns exec khpair-server ss -tni
#
# It is also the baseline `kharness bench` measures the harness against.
set -eu
cmd=${1:-}
name=${2:-khpair}
c="$name-client"
s="$name-server"
case "$cmd" in
up)
	ip netns add "$c"
	ip netns add "$s"
	ip -n "$c" link set lo up
	ip -n "$s" link set lo up
	ip -n "$c" link add veth0 type veth peer name veth0 netns "$s"
	ip -n "$c" addr add 198.18.0.1/24 dev veth0
	ip -n "$s" addr add 198.18.0.2/24 dev veth0
	ip -n "$c" addr add 2001:db8::1/64 dev veth0 nodad
	ip -n "$s" addr add 2001:db8::2/64 dev veth0 nodad
	ip -n "$c" link set veth0 up
	ip -n "$s" link set veth0 up
	;;
down)
	ip netns del "$c"
	ip netns del "$s"
	;;
*)
	echo "usage: $0 up|down [NAME]" >&2
	exit 2
	;;
esac
