#!/bin/sh
# The neighbour topology of neigh.add_dump and neigh.state_machine, built by
# hand with iproute2: one namespace NAME-neigh holding veth0 (up) and its peer
# veth1 (left down, so veth0 never has carrier and the kernel adds no
# neighbour of its own), with the table neigh.add_dump writes: 198.18.0.10-13
# and 2001:db8::10-13 as PERMANENT, REACHABLE, STALE and NOARP.
#
#   netns-scripts/neigh.sh up   [NAME]    create it (NAME defaults to khneigh)
#   netns-scripts/neigh.sh down [NAME]    delete it
#
# Then, for example:
#   ip -n khneigh-neigh -s neigh show dev veth0 nud all
#   ip -n khneigh-neigh -j neigh show dev veth0      (hides NOARP entries)
#
# Wait for veth0 to leave operstate UNKNOWN before adding entries: the
# carrier-off event of a new veth is handled later by linkwatch, and the
# NETDEV_CHANGE it sends flushes every non-PERMANENT neighbour of the device.
set -eu
cmd=${1:-}
name=${2:-khneigh}
n="$name-neigh"
case "$cmd" in
up)
	ip netns add "$n"
	ip -n "$n" link set lo up
	ip -n "$n" link add veth0 type veth peer name veth1
	ip -n "$n" link set veth0 up
	i=0
	while ip -n "$n" -o link show veth0 | grep -q 'state UNKNOWN'; do
		i=$((i + 1))
		[ "$i" -le 500 ] || { echo "$0: veth0 stayed in state UNKNOWN" >&2; exit 1; }
		sleep 0.01
	done
	ip -n "$n" neigh add 198.18.0.10 lladdr 02:00:00:00:04:10 dev veth0 nud permanent
	ip -n "$n" neigh add 198.18.0.11 lladdr 02:00:00:00:04:11 dev veth0 nud reachable
	ip -n "$n" neigh add 198.18.0.12 lladdr 02:00:00:00:04:12 dev veth0 nud stale
	ip -n "$n" neigh add 198.18.0.13 lladdr 02:00:00:00:04:13 dev veth0 nud noarp
	ip -n "$n" neigh add 2001:db8::10 lladdr 02:00:00:00:06:10 dev veth0 nud permanent
	ip -n "$n" neigh add 2001:db8::11 lladdr 02:00:00:00:06:11 dev veth0 nud reachable
	ip -n "$n" neigh add 2001:db8::12 lladdr 02:00:00:00:06:12 dev veth0 nud stale
	ip -n "$n" neigh add 2001:db8::13 lladdr 02:00:00:00:06:13 dev veth0 nud noarp
	;;
down)
	ip netns del "$n"
	;;
*)
	echo "usage: $0 up|down [NAME]" >&2
	exit 2
	;;
esac
