#!/usr/bin/env bash
# Two hosts in network namespaces joined by a veth pair: the entry node runs in one, a member
# in the other, with a scatter placement so that calls cross the link. The output must equal
# the native run's. Exits 77 (CTest: skipped) where network namespaces are not permitted.
#
# Usage: two_hosts.sh DISTNODE PROGRAM   (PROGRAM without .bc/.native)
set -u
distnode=$1
program=$2
id=$$
a=dn-a-$id
b=dn-b-$id
tmp=$(mktemp -d)

cleanup() {
  [ -n "${member:-}" ] && kill "$member" 2>/dev/null
  ip netns del "$a" 2>/dev/null
  ip netns del "$b" 2>/dev/null
  rm -rf "$tmp"
}
if ! command -v ip >/dev/null || ! ip netns add "$a" 2>/dev/null; then
  echo "SKIP: network namespaces are not permitted here (needs root and iproute2)"
  rm -rf "$tmp"
  exit 77
fi
trap cleanup EXIT
set -e
ip netns add "$b"
ip link add "va$id" type veth peer name "vb$id"
ip link set "va$id" netns "$a"
ip link set "vb$id" netns "$b"
ip -n "$a" addr add 10.231.0.1/24 dev "va$id"
ip -n "$b" addr add 10.231.0.2/24 dev "vb$id"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "va$id" up
ip -n "$b" link set "vb$id" up

cat >"$tmp/cluster.yaml" <<YAML
cluster: two-hosts
join_timeout_ms: 20000
nodes:
  - name: n0
    call: tcp://10.231.0.1:7700
  - name: n1
    call: tcp://10.231.0.2:7700
YAML
set +e
ip netns exec "$b" "$distnode" --join "$tmp/cluster.yaml" --name n1 "$program.bc" \
  >"$tmp/member.out" 2>"$tmp/member.err" &
member=$!
ip netns exec "$a" "$distnode" --join "$tmp/cluster.yaml" --name n0 --placement scatter \
  --verbose "$program.bc" >"$tmp/entry.out" 2>"$tmp/entry.err"
entry_rc=$?
wait "$member"
member_rc=$?
member=""
"$program.native" >"$tmp/native.out" 2>/dev/null
native_rc=$?

fail=0
if ! cmp -s "$tmp/entry.out" "$tmp/native.out"; then
  echo "FAIL: output differs from the native run"; diff "$tmp/native.out" "$tmp/entry.out"; fail=1
fi
[ "$entry_rc" = "$native_rc" ] || { echo "FAIL: exit code $entry_rc, native $native_rc"; fail=1; }
[ "$member_rc" = 0 ] || { echo "FAIL: member exit code $member_rc"; cat "$tmp/member.err"; fail=1; }
grep -q "on n1$" "$tmp/entry.err" || { echo "FAIL: nothing was placed on n1"; fail=1; }
crossed=$(grep -c "on n1$" "$tmp/entry.err")
[ $fail = 0 ] && echo "two hosts over veth: output identical, $crossed functions on the other host"
exit $fail
