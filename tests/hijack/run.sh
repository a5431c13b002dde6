#!/usr/bin/env bash
# The hijack's acceptance catalogue: LKL's tools/lkl/tests/hijack-test.sh
# case by case (loopback B1-B6, pipe P1-P2, tap T1-T24, VDE V1-V4), plus
# our own checks (X*), run through bin/lkl-hijack.sh. Output is TAP:
#
#   ok N - name            not ok N - name # reason      ok N - name # SKIP why
#
# Every case runs inside network namespaces this script creates (tap and
# veth devices live there; /etc/netns/NS/resolv.conf says nameserver
# 127.0.0.1) and deletes on exit, passed or failed. Traffic only goes to
# addresses inside them. Needs root (CAP_NET_ADMIN), /dev/net/tun, iperf3
# (in place of netperf), nc (openbsd), curl, tcpdump, vde_switch, python3;
# a case whose tool is missing is skipped and says why.
#
#   tests/hijack/run.sh [PATTERN]     (only cases whose id or name matches)
#
# LKL_HIJACK_LIB names the library (default: next to bin/lkl-hijack.sh's
# usual places). LKL_CATALOGUE_MODE=single runs every case with the
# launcher's --single-process (the kernel inside the program, as LKL);
# the default is the process-tree mode. Exit status: 0 when no case failed.
#
# Where LKL's case checks something our design changes on purpose, the
# case says so in a comment.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
hijack=$root/bin/lkl-hijack.sh
mode=${LKL_CATALOGUE_MODE:-tree}
mode_args=()
[ "$mode" = single ] && mode_args=(--single-process)
python=/usr/bin/python3
only=${1:-}
work=$(mktemp -d /tmp/lkl-catalogue.XXXXXX)
cd "$work" || exit 1
# Namespaces and background helpers to remove at exit.
namespaces=()
helpers=()

cleanup() {
	local p ns
	for p in "${helpers[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${helpers[@]}"; do wait "$p" 2>/dev/null; done
	[ -f "$work/vde.pid" ] && kill "$(cat "$work/vde.pid")" 2>/dev/null
	for ns in "${namespaces[@]}"; do
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- TAP ---------------------------------------------------------------------
n=0
failed=0
echo "TAP version 13"

# case ID NAME FUNCTION: runs FUNCTION in a subshell; status 0 passes,
# 113 skips (the last line of its output is the reason), anything else
# fails (the last line is the reason; the whole output follows as comments).
case_() {
	local id=$1 name=$2 fn=$3 log rc t0 t1 last
	if [ -n "$only" ] && [[ "$id $name" != *"$only"* ]]; then return; fi
	n=$((n + 1))
	log=$work/log.$n
	t0=$(date +%s%N)
	("$fn") >"$log" 2>&1 </dev/null
	rc=$?
	t1=$(date +%s%N)
	last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-200)
	case $rc in
	0) echo "ok $n - $id $name" ;;
	113) echo "ok $n - $id $name # SKIP ${last#SKIP: }" ;;
	*)
		failed=$((failed + 1))
		echo "not ok $n - $id $name # status $rc: ${last:-no output}"
		sed 's/^/#   /' "$log" | tail -n 40
		;;
	esac
	echo "#   ($(((t1 - t0) / 1000000)) ms)"
}

skip() { echo "SKIP: $*"; exit 113; }
fail() { echo "$*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed"; }
# has FILE TEXT...: every TEXT is in FILE.
has() {
	local f=$1 t
	shift
	for t in "$@"; do grep -qF -- "$t" "$f" || fail "no '$t' in the output"; done
}
# lacks FILE TEXT: TEXT is not in FILE.
lacks() { ! grep -qF -- "$2" "$1" || fail "'$2' in the output"; }

# ---- namespaces and the hijack -------------------------------------------------
# mkns TAG: a namespace of ours with lo up; prints its name.
mkns() {
	local ns=lkl-$$-$1
	ip netns add "$ns" || return 1
	mkdir -p "/etc/netns/$ns"
	echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
	ip -n "$ns" link set lo up
	echo "$ns"
}
# host NS CMD...: CMD on the host side of namespace NS.
host() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# lkl NS CONFIG CMD...: CMD under the hijack inside NS ("-" = no config:
# loopback only). Output goes to stdout and ./out.
lkl() {
	local ns=$1 cfg=$2
	shift 2
	if [ "$cfg" = - ]; then
		ip netns exec "$ns" env -u LKL_HIJACK_CONFIG_FILE "$hijack" "${mode_args[@]}" "$@"
	else
		ip netns exec "$ns" env -u LKL_HIJACK_CONFIG_FILE "$hijack" "${mode_args[@]}" --config "$cfg" "$@"
	fi
}
# lkl_for SECS NS CONFIG CMD...: lkl with a time limit (timeout stays
# outside the hijack: a hijacked parent would hold the taps).
lkl_for() {
	local secs=$1 ns=$2 cfg=$3
	shift 3
	timeout "$secs" ip netns exec "$ns" env -u LKL_HIJACK_CONFIG_FILE "$hijack" "${mode_args[@]}" --config "$cfg" "$@"
}
# tap NS NAME V4 V6: a tap with host addresses, up.
tap() {
	ip -n "$1" tuntap add dev "$2" mode tap &&
		ip -n "$1" addr add "$3/24" dev "$2" &&
		ip -n "$1" addr add "$4/64" dev "$2" nodad &&
		ip -n "$1" link set "$2" up
}
# helper NS CMD...: a host-side helper in NS, killed at exit.
helper() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@" &
	helpers+=($!)
}
# wait_tcp NS ADDR PORT: until something listens there (10 s).
wait_tcp() {
	local i
	for i in $(seq 200); do
		host "$1" "$python" -c "import socket,sys; socket.create_connection(('$2', $3), 0.2)" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "nothing listens on $2:$3"
}

if [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP needs root (network namespaces, taps)"
	exit 0
fi
if [ ! -x "$hijack" ]; then
	echo "Bail out! $hijack missing"
	exit 1
fi
# A non-setuid ping (LD_PRELOAD is ignored for setuid/setcap programs).
ping=$work/ping
cp "$(command -v ping)" "$ping" 2>/dev/null && chmod 755 "$ping" || ping=

# MACs and addresses of LKL's net-setup.sh.
MAC0=aa:bb:cc:dd:ee:ff
MAC1=aa:bb:cc:dd:ee:aa
HOST0=192.168.113.1 LKL0=192.168.113.2 HOST0_6=fc03::1 LKL0_6=fc03::2
HOST1=192.168.114.1 LKL1=192.168.114.2 HOST1_6=fc04::1 LKL1_6=fc04::2
PORT=11223

# ==== loopback (no devices) ======================================================
lo_ns=$(mkns lo) && namespaces+=("$lo_ns")

b1() { lkl "$lo_ns" - ip addr >out || fail "ip addr: $?"; cat out; has out "lo:" 127.0.0.1; }
b2() { lkl "$lo_ns" - ip route >out || fail "ip route: $?"; cat out; }
b3() { [ -n "$ping" ] || skip "no ping"; lkl "$lo_ns" - "$ping" -c 1 127.0.0.1; }
b4() { [ -n "$ping" ] || skip "no ping"; lkl "$lo_ns" - "$ping" -6 -c 1 ::1; }
b5() {
	# LKL prints dump paths through the kernel console, so its test sets
	# debug=1 to see them; we print them to stderr always (debug kept
	# here as in LKL's config).
	cat >b5.json <<-E
		{"mount":"proc,sysfs","dump":"/sysfs/class/net/lo/mtu,/sysfs/class/net/lo/dev_id","debug":"1"}
	E
	lkl "$lo_ns" b5.json true >out 2>&1 || fail "true: $?"
	cat out
	grep -q '^65536' out || fail "no line starting 65536"
	has out 0x0
}
b6() {
	cat >b6.json <<-E
		{"debug":"1","boot_cmdline":"loglevel=1"}
	E
	lkl "$lo_ns" b6.json true >out 2>&1 || fail "true: $?"
	cat out
	# The kernel's lines (debug also logs the library's settings).
	local n
	n=$(grep -vc '^lkl-hijack: ' out)
	[ "$n" = 1 ] || fail "$n kernel lines, not 1"
}
case_ B1 ip_addr b1
case_ B2 ip_route b2
case_ B3 ping b3
case_ B4 ping6 b4
case_ B5 mount_and_dump b5
case_ B6 boot_cmdline b6

# ==== pipe backend =================================================================
pipe_cfg() { # FILE RX TX V4 V6 MAC
	cat >"$1" <<-E
		{"interfaces":[{"type":"pipe","param":"$2|$3","ip":"$4","masklen":"24",
		 "ipv6":"$5","masklen6":"64","mac":"$6"}]}
	E
}
p1() {
	command -v mkfifo >/dev/null || skip "no mkfifo"
	rm -f fifo1 fifo2 && mkfifo fifo1 fifo2 || fail "mkfifo"
	pipe_cfg p.json fifo1 fifo2 "$LKL0" "$LKL0_6" "$MAC0"
	lkl "$lo_ns" p.json ip addr >out 2>&1 || fail "ip addr: $?"
	cat out
	has out eth0 "$LKL0" "$MAC0"
}
p2() {
	[ -n "$ping" ] || skip "no ping"
	[ -p fifo1 ] || skip "P1 made no fifos"
	pipe_cfg a.json fifo1 fifo2 "$HOST0" "$HOST0_6" "$MAC1"
	pipe_cfg b.json fifo2 fifo1 "$LKL0" "$LKL0_6" "$MAC0"
	# (not through the lkl function: $! must be the process itself)
	ip netns exec "$lo_ns" "$hijack" --config a.json sleep 10 &
	local a=$!
	local rc=0
	lkl "$lo_ns" b.json "$ping" -c 1 -w 10 "$HOST0" || rc=1
	lkl "$lo_ns" b.json "$ping" -6 -c 1 -w 10 "$HOST0_6" || rc=1
	kill "$a" 2>/dev/null
	wait "$a" 2>/dev/null
	[ $rc = 0 ] || fail "a ping over the pipe failed"
}
case_ P1 pipe_setup p1
case_ P2 pipe_ping p2

# ==== tap backend ==================================================================
tap_ns=
if [ -c /dev/net/tun ]; then
	tap_ns=$(mkns tap) && namespaces+=("$tap_ns")
	tap "$tap_ns" tap0 "$HOST0" "$HOST0_6" && tap "$tap_ns" tap1 "$HOST1" "$HOST1_6" || tap_ns=
fi
if [ -n "$tap_ns" ]; then
	command -v iperf3 >/dev/null && helper "$tap_ns" iperf3 -s -p $PORT >"$work/iperf3.log" 2>&1
	helper "$tap_ns" "$python" "$here/rr.py" server "$HOST0" $((PORT + 1)) >/dev/null 2>&1
	# Once here (a probe per case would be a bogus client for iperf3).
	(wait_tcp "$tap_ns" "$HOST0" $((PORT + 1))) >/dev/null
	command -v iperf3 >/dev/null && (wait_tcp "$tap_ns" "$HOST0" $PORT) >/dev/null
fi
need_tap() { [ -n "$tap_ns" ] || skip "no /dev/net/tun (or the taps could not be made)"; }
# tap_cfg FILE [OFFLOAD] [EXTRA interface keys] [EXTRA top-level keys]
tap_cfg() {
	local off=${2:+,\"offload\":\"$2\"}
	cat >"$1" <<-E
		{"gateway":"$HOST0","gateway6":"$HOST0_6","debug":"1"${4:+,$4},
		 "interfaces":[{"type":"tap","param":"tap0","ip":"$LKL0","masklen":"24",
		 "ipv6":"$LKL0_6","masklen6":"64","mac":"$MAC0"$off${3:+,$3}}]}
	E
}
t1() {
	need_tap
	tap_cfg tap.json
	lkl "$tap_ns" tap.json ip addr >out 2>&1 || fail "ip addr: $?"
	cat out
	has out eth0 "$LKL0" "$MAC0" "$LKL0_6"
	# LKL looks for its "WARN: failed to free"; ours would be a kernel
	# warning or a leak report at halt.
	lacks out "WARNING:"
	lacks out "leak"
}
t2() {
	need_tap
	[ -n "$ping" ] || skip "no ping"
	lkl "$tap_ns" tap.json "$ping" -c 1 "$HOST0" || fail "ping $HOST0"
	lkl "$tap_ns" tap.json "$ping" -6 -c 1 "$HOST0_6" || fail "ping6 $HOST0_6"
}
t3() {
	need_tap
	ip -n "$tap_ns" neigh flush dev tap0
	lkl "$tap_ns" tap.json sleep 3 &
	local k=$! rc=0
	sleep 1.6 # boot + IPv6 DAD
	kill -0 $k 2>/dev/null || fail "the hijacked sleep died"
	host "$tap_ns" ping -i 0.01 -c 65 -W 1 "$LKL0" | tail -n 2 || rc=1
	host "$tap_ns" ping -6 -i 0.01 -c 65 -W 1 "$LKL0_6" | tail -n 2 || rc=1
	wait $k || rc=1
	[ $rc = 0 ] || fail "a host ping to the kernel failed"
}
t4() {
	need_tap
	tap_cfg neigh.json "" "\"neigh\":\"192.168.113.100|$MAC1;fc03::100|$MAC0\""
	lkl "$tap_ns" neigh.json ip neighbor show >out || fail "ip neighbor: $?"
	cat out
	has out "192.168.113.100 dev eth0 lladdr $MAC1" "fc03::100 dev eth0 lladdr $MAC0"
	lkl "$tap_ns" neigh.json ip route show >out || fail "ip route: $?"
	cat out
	has out "$HOST0"
	lkl "$tap_ns" neigh.json ip -6 route show >out || fail "ip -6 route: $?"
	cat out
	has out "$HOST0_6"
}
# The host-side servers (started below, in this shell, so that cleanup
# can stop them).
iperf_server() { :; }
# iperf CONFIG [ARGS...]: a 1-second iperf3 from the kernel to the host.
iperf() {
	local cfg=$1
	shift
	local rc=0 try
	# One iperf3 server serves every case, one test at a time: a server
	# still finishing the previous case answers "busy"; try again.
	for try in 1 2 3 4 5; do
		rc=0
		lkl "$tap_ns" "$cfg" iperf3 -c "$HOST0" -p $PORT -t 1 "$@" >out 2>&1 || rc=$?
		[ $rc != 0 ] && grep -q busy out || break
		sleep 0.5
	done
	if [ $rc != 0 ]; then
		# iperf3's own lines last (the kernel console comes first).
		grep -v '^\[ *[0-9]*\.[0-9]*\]' out | tail -n 20
		fail "iperf3 $*: exit $rc"
	fi
	grep -E 'sender|receiver' out
}
# netperf's TCP_RR: request/response from the kernel (python client) to a
# host server; 2000 one-byte round trips.
t5() {
	need_tap
	tap_cfg plain.json
	lkl "$tap_ns" plain.json "$python" "$here/rr.py" client "$HOST0" $((PORT + 1)) 2000
}
t6() { need_tap; need iperf3; iperf_server; tap_cfg plain.json; iperf plain.json; }
t7() { need_tap; need iperf3; iperf_server; tap_cfg plain.json; iperf plain.json -R; }
t8() { need_tap; need iperf3; iperf_server; tap_cfg tso.json 0x883; iperf tso.json; }
t9() { need_tap; need iperf3; iperf_server; tap_cfg tso.json 0x883; iperf tso.json -R; }
# LKL's case is named stream_csum_tso_mrgrxbuf but runs TCP_MAERTS; so do we.
t10() { need_tap; need iperf3; iperf_server; tap_cfg mrg.json 0x8803; iperf mrg.json -R; }
t11() {
	need_tap
	tap_cfg fq.json "" '"qdisc":"root|fq"'
	lkl "$tap_ns" fq.json tc -s -d qdisc show >out || fail "tc: $?"
	cat out
	has out "qdisc fq" throttled
}
# Two interfaces: eth0 on tap0, eth1 on tap1. EXTRA0/EXTRA1 add keys.
multi_cfg() { # FILE [EXTRA0] [EXTRA1]
	cat >"$1" <<-E
		{"gateway":"$HOST0","gateway6":"$HOST0_6","debug":"1","interfaces":[
		 {"type":"tap","param":"tap0","ip":"$LKL0","masklen":"24","ipv6":"$LKL0_6","masklen6":"64","mac":"$MAC0"${2:+,$2}},
		 {"type":"tap","param":"tap1","ip":"$LKL1","masklen":"24","ipv6":"$LKL1_6","masklen6":"64","mac":"$MAC1"${3:+,$3}}]}
	E
}
t12() {
	need_tap
	multi_cfg multi.json
	lkl "$tap_ns" multi.json ip addr >out 2>&1 || fail "ip addr: $?"
	cat out
	has out eth0 eth1 "$LKL0" "$LKL1" "$MAC0" "$MAC1" "$LKL0_6" "$LKL1_6"
	lacks out "WARNING:"
}
t13() {
	need_tap
	[ -n "$ping" ] || skip "no ping"
	local a
	for a in "$HOST0" "$HOST1"; do lkl "$tap_ns" multi.json "$ping" -c 1 "$a" || fail "ping $a"; done
	for a in "$HOST0_6" "$HOST1_6"; do lkl "$tap_ns" multi.json "$ping" -6 -c 1 "$a" || fail "ping6 $a"; done
}
t14() {
	need_tap
	multi_cfg neigh2.json \
		"\"neigh\":\"192.168.113.100|$MAC1;fc03::100|$MAC0\"" \
		"\"neigh\":\"192.168.114.100|$MAC0;fc04::100|$MAC1\""
	lkl "$tap_ns" neigh2.json ip neighbor show >out || fail "ip neighbor: $?"
	cat out
	has out "192.168.113.100 dev eth0 lladdr $MAC1" "fc03::100 dev eth0 lladdr $MAC0" \
		"192.168.114.100 dev eth1 lladdr $MAC0" "fc04::100 dev eth1 lladdr $MAC1"
}
t15() { need_tap; lkl "$tap_ns" multi.json ip route show >out || fail "ip route: $?"; cat out; has out "default via $HOST0"; }
t16() { need_tap; lkl "$tap_ns" multi.json ip -6 route show >out || fail "ip -6 route: $?"; cat out; has out "default via $HOST0_6"; }
t17() {
	need_tap
	multi_cfg table.json \
		"\"ifgateway\":\"$HOST0\",\"ifgateway6\":\"$HOST0_6\"" \
		"\"ifgateway\":\"$HOST1\",\"ifgateway6\":\"$HOST1_6\""
	# LKL only writes this config; we also check it boots.
	lkl "$tap_ns" table.json true || fail "the policy-table config does not boot"
}
t18() { need_tap; lkl "$tap_ns" table.json ip rule show >out || fail "ip rule: $?"; cat out; has out "from $LKL0" "from $LKL1"; }
t19() { need_tap; lkl "$tap_ns" table.json ip -6 rule show >out || fail "ip -6 rule: $?"; cat out; has out "from $LKL0_6" "from $LKL1_6"; }
# Tables are 2 x ifindex (eth0 = 2 -> 4) and 2 x ifindex + 1 for IPv6.
t20() { need_tap; lkl "$tap_ns" table.json ip route show table 4 >out || fail "ip route: $?"; cat out; has out "$HOST0"; }
t21() { need_tap; lkl "$tap_ns" table.json ip -6 route show table 5 >out || fail "ip -6 route: $?"; cat out; has out "fc03::" "$HOST0_6"; }
t22() { need_tap; lkl "$tap_ns" table.json ip route show table 6 >out || fail "ip route: $?"; cat out; has out "$HOST1"; }
t23() { need_tap; lkl "$tap_ns" table.json ip -6 route show table 7 >out || fail "ip -6 route: $?"; cat out; has out "fc04::" "$HOST1_6"; }
case_ T1 tap_setup t1
case_ T2 tap_ping_host t2
case_ T3 tap_ping_lkl t3
case_ T4 tap_neighbours t4
case_ T5 tap_rr t5
case_ T6 tap_stream t6
case_ T7 tap_maerts t7
case_ T8 tap_stream_csum_tso t8
case_ T9 tap_maerts_csum_tso t9
case_ T10 tap_stream_csum_tso_mrgrxbuf t10
case_ T11 tap_qdisc_fq t11
case_ T12 multi_if_setup t12
case_ T13 multi_if_ping t13
case_ T14 multi_if_neigh t14
case_ T15 multi_if_gateway t15
case_ T16 multi_if_gateway_v6 t16
case_ T17 multitable_setup t17
case_ T18 multitable_ipv4_rule t18
case_ T19 multitable_ipv6_rule t19
case_ T20 multitable_table4 t20
case_ T21 multitable_table5 t21
case_ T22 multitable_table6 t22
case_ T23 multitable_table7 t23

# ==== our own checks over the tap ======================================================
source "$here/extra.sh"

t24() {
	need_tap
	ip -n "$tap_ns" link del tap0 && ip -n "$tap_ns" link del tap1 || fail "ip link del"
	! ip -n "$tap_ns" link show tap0 >/dev/null 2>&1 || fail "tap0 still there"
}
case_ T24 tap_cleanup t24

# ==== VDE ===========================================================================
vde_ns=
vde_dir=$work/vde
v1() {
	need vde_switch
	[ -c /dev/net/tun ] || skip "no /dev/net/tun"
	[ -n "$vde_ns" ] || fail "no namespace"
	tap "$vde_ns" vtap0 "$HOST0" "$HOST0_6" || fail "tap"
	ip netns exec "$vde_ns" vde_switch -t vtap0 -s "$vde_dir" -d -p "$work/vde.pid" \
		</dev/null >/dev/null 2>"$work/vde.err" || fail "vde_switch: $(cat "$work/vde.err")"
	local i
	for i in $(seq 100); do [ -S "$vde_dir/ctl" ] && break; sleep 0.05; done
	[ -S "$vde_dir/ctl" ] || fail "vde_switch made no $vde_dir/ctl: $(cat "$work/vde.err")"
	cat >vde.json <<-E
		{"interfaces":[{"type":"vde","param":"$vde_dir","ip":"$LKL0","masklen":"24","mac":"$MAC0"}]}
	E
	lkl "$vde_ns" vde.json ip addr >out 2>&1 || fail "ip addr: $?"
	cat out
	has out eth0 "$LKL0" "$MAC0"
}
v2() {
	[ -S "$vde_dir/ctl" ] || skip "no switch (V1)"
	[ -n "$ping" ] || skip "no ping"
	lkl "$vde_ns" vde.json "$ping" -c 1 -w 5 "$HOST0"
}
v3() {
	[ -S "$vde_dir/ctl" ] || skip "no switch (V1)"
	lkl "$vde_ns" vde.json sleep 3 &
	local k=$! rc=0
	sleep 0.5
	kill -0 $k 2>/dev/null || fail "the hijacked sleep died"
	host "$vde_ns" ping -i 0.01 -c 65 -W 1 "$LKL0" | tail -n 2 || rc=1
	wait $k || rc=1
	[ $rc = 0 ] || fail "the host ping to the kernel failed"
}
v4() {
	[ -f "$work/vde.pid" ] || skip "no switch (V1)"
	kill "$(cat "$work/vde.pid")" 2>/dev/null
	ip -n "$vde_ns" link del vtap0 || fail "ip link del vtap0"
}
if command -v vde_switch >/dev/null; then
	vde_ns=$(mkns vde) && namespaces+=("$vde_ns")
fi
case_ V1 vde_setup v1
case_ V2 vde_ping_host v2
case_ V3 vde_ping_lkl v3
case_ V4 vde_cleanup v4

echo "1..$n"
[ "$failed" = 0 ]
