#!/bin/sh
# The per-user routing topology of rule.uid_range, built by hand with
# iproute2: a client namespace NAME-client with veth0 to NAME-a
# (198.18.1.0/24) and veth1 to NAME-b (198.18.2.0/24), IPv6 off everywhere.
# 198.19.0.0/24 goes via 198.18.1.2 (veth0) in the main table and via
# 198.18.2.2 (veth1) in table 100; the rule `uidrange 2000-2009 lookup 100`
# sends the sockets of uids 2000-2009 out of veth1. Both gateways get a
# PERMANENT neighbour entry, so no ARP packet moves the link counters.
#
#   netns-scripts/uid-routing.sh up   [NAME]    create it (NAME defaults to khuid)
#   netns-scripts/uid-routing.sh down [NAME]    delete it
#
# Then, for example:
#   ip -n khuid-client route get 198.19.0.10 uid 2001     (dev veth1)
#   ip -n khuid-client route get 198.19.0.10 uid 3001     (dev veth0)
#   ip netns exec khuid-client setpriv --reuid 2001 --regid 2001 --clear-groups \
#       sh -c 'echo x > /dev/udp/198.19.0.10/9'       (bash's /dev/udp; any UDP sender works)
#   ip -n khuid-b -s link show veth0                       (RX packets +1)
set -eu
cmd=${1:-}
name=${2:-khuid}
c="$name-client"
a="$name-a"
b="$name-b"
case "$cmd" in
up)
	for n in "$c" "$a" "$b"; do
		ip netns add "$n"
		ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		ip netns exec "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
		ip -n "$n" link set lo up
	done
	ip -n "$c" link add veth0 type veth peer name veth0 netns "$a"
	ip -n "$c" link add veth1 type veth peer name veth0 netns "$b"
	ip -n "$c" addr add 198.18.1.1/24 dev veth0
	ip -n "$a" addr add 198.18.1.2/24 dev veth0
	ip -n "$c" addr add 198.18.2.1/24 dev veth1
	ip -n "$b" addr add 198.18.2.2/24 dev veth0
	for l in "$c veth0" "$c veth1" "$a veth0" "$b veth0"; do
		set -- $l
		ip -n "$1" link set "$2" up
	done
	mac_a=$(ip -n "$a" -o link show veth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	mac_b=$(ip -n "$b" -o link show veth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	ip -n "$c" neigh add 198.18.1.2 lladdr "$mac_a" dev veth0 nud permanent
	ip -n "$c" neigh add 198.18.2.2 lladdr "$mac_b" dev veth1 nud permanent
	ip -n "$c" route add 198.19.0.0/24 via 198.18.1.2 dev veth0
	ip -n "$c" route add 198.19.0.0/24 via 198.18.2.2 dev veth1 table 100
	ip -n "$c" rule add uidrange 2000-2009 lookup 100 pref 100
	;;
down)
	ip netns del "$c"
	ip netns del "$a"
	ip netns del "$b"
	;;
*)
	echo "usage: $0 up|down [NAME]" >&2
	exit 2
	;;
esac
