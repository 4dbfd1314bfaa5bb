#!/bin/sh
# The three-namespace topology of the kharness raw family (raw.*, packet.*,
# zerocopy.*, sctp.*, sockopt.*, msgflags.*, procfs.*), built by hand with
# iproute2:
#
#   NAME-sender            NAME-receiver              NAME-third
#   s0 198.18.0.1/24 <-> r0 198.18.0.2/24
#                          r1 198.18.1.2/24 <-> t0 198.18.1.3/24
#
# IPv6 is disabled in all three (no ND/MLD traffic moves the counters),
# rp_filter and log_martians are set explicitly (IPv4 conf/all and
# conf/default are otherwise copied from the host), icmp_ratemask is 0 so no
# ICMP error is rate limited. The third namespace owns the address the
# spoofing cases forge; its link is the receiver's route back to it.
#
#   netns-scripts/three-ns.sh up   [NAME] [RP_FILTER]   create it (NAME defaults to kh3, RP_FILTER to 0)
#   netns-scripts/three-ns.sh down [NAME]               delete it
#
# Then, for example:
#   ip netns exec kh3-sender ping -c1 198.18.0.2
#   ip netns exec kh3-receiver nstat -az 'Udp*' TcpExtIPReversePathFilter
#   ip netns exec kh3-receiver tcpdump -ni r0
set -eu
cmd=${1:-}
name=${2:-kh3}
rp=${3:-0}
s="$name-sender"
r="$name-receiver"
t="$name-third"
case "$cmd" in
up)
	for ns in "$s" "$r" "$t"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		for scope in all default; do
			ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$scope.disable_ipv6=1"
			ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$scope.rp_filter=0"
			ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$scope.log_martians=0"
		done
		ip netns exec "$ns" sysctl -qw net.ipv4.icmp_ratemask=0
	done
	for scope in all default; do
		ip netns exec "$r" sysctl -qw "net.ipv4.conf.$scope.rp_filter=$rp"
	done
	ip -n "$s" link add s0 type veth peer name r0 netns "$r"
	ip -n "$r" link add r1 type veth peer name t0 netns "$t"
	ip -n "$s" addr add 198.18.0.1/24 dev s0
	ip -n "$r" addr add 198.18.0.2/24 dev r0
	ip -n "$r" addr add 198.18.1.2/24 dev r1
	ip -n "$t" addr add 198.18.1.3/24 dev t0
	ip -n "$s" link set s0 up
	ip -n "$r" link set r0 up
	ip -n "$r" link set r1 up
	ip -n "$t" link set t0 up
	;;
down)
	ip netns del "$s"
	ip netns del "$r"
	ip netns del "$t"
	;;
*)
	echo "usage: $0 up|down [NAME] [RP_FILTER]" >&2
	exit 2
	;;
esac
