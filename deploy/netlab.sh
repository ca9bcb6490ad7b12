#!/bin/bash
# Network roles of the container lab (deploy/compose.yaml), run as the
# entrypoint of the strata-lab-fw image:
#   netlab.sh router PUBLIC_IP PUBLIC_GW
#                                     NAT from the other networks to the one holding
#                                     PUBLIC_IP: outbound is masqueraded, inbound dropped
#   netlab.sh nat GATEWAY ARGS...     a node behind the router: default route via GATEWAY
#   netlab.sh firewall ARGS...        a node whose firewall drops inbound connections
# ARGS are strata's (e.g. lab share --index 14 -- node).
set -euo pipefail
ipt() { iptables "$@" 2>/dev/null || iptables-legacy "$@"; }
role=$1; shift
case "$role" in
router)
  pubip=$1 pubgw=$2
  pub=$(ip -o -4 addr show | awk -v ip="$pubip" '$4 ~ "^"ip"/" {print $2}')
  [ -n "$pub" ] || { echo "router: no interface holds $pubip" >&2; exit 1; }
  # Nothing is forwarded until the NAT rule is in: a packet forwarded
  # without it leaves a conntrack entry without NAT that its flow keeps alive.
  ipt -P FORWARD DROP
  ip route replace default via "$pubgw" dev "$pub"
  ipt -t nat -A POSTROUTING -o "$pub" -j MASQUERADE
  ipt -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ipt -A FORWARD ! -i "$pub" -o "$pub" -j ACCEPT
  # Anything else coming in from the public side is an inbound connection
  # (to a home node, or to the router's own ports: there is no port
  # forwarding): count and drop it.
  ipt -A FORWARD -i "$pub" -j DROP
  ipt -A INPUT -i lo -j ACCEPT
  ipt -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ipt -A INPUT -i "$pub" -p icmp -j ACCEPT
  ipt -A INPUT -i "$pub" -j DROP
  echo "router: NAT out of $pub; inbound dropped"
  trap 'exit 0' TERM INT
  while :; do sleep 3600 & wait $!; done
  ;;
nat)
  gw=$1; shift
  ip route replace default via "$gw"
  exec /strata "$@"
  ;;
firewall)
  ipt -A INPUT -i lo -j ACCEPT
  ipt -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ipt -A INPUT -p tcp --dport 7501 -j ACCEPT # the control API, for the lab's test
  ipt -A INPUT -j DROP
  exec /strata "$@"
  ;;
*)
  echo "netlab.sh: unknown role $role; use router, nat GATEWAY ARGS or firewall ARGS" >&2
  exit 2
  ;;
esac
