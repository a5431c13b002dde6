#!/usr/bin/env bash
# The hijack next to the host kernel, in the same run (figures, not a
# test; numbers on a shared machine are noisy, so both sides run back to
# back, several rounds, and the best round of each counts):
#
#   1. TCP throughput: iperf3 under the hijack (kernel in the process, tap
#      backend, offloads 0x883) to an iperf3 server on the tap's host side,
#      against iperf3 between two host namespaces over a veth pair; both
#      directions. Target: hijack >= 0.5 x veth.
#   2. TCP request/response latency: a C client doing 1-byte
#      request/response round trips (TCP_NODELAY) under the hijack to a
#      host server, against the same client over the veth pair.
#      Target: hijack <= 1.5 x veth.
#   3. The hook's cost on a host descriptor: bin/hook-cost.sh (callgrind
#      instructions). Target: under 100.
#
# 1 and 2 run in both modes of the launcher: the process-tree mode (its
# default: the kernel in a server process, calls over a socket) and
# --single-process (the kernel inside the program), plus:
#   4. A kernel-bound null call (fcntl(F_GETFL) on a kernel socket) in each
#      mode next to the host's, and fork + the child's first kernel call +
#      exit + wait, next to the same on the host. Goals (tree mode): null
#      call <= 15 us (both ends sleeping) / <= 5 us (spinning); iperf3 >=
#      0.8 x single-process both ways; request/response <= 1.3 x
#      single-process; fork + first call <= 1 ms.
#   5. HTTP requests/s: wrk (2 threads, 50 connections) from the tap's
#      host side against nginx with 2 workers (daemonized master) in the
#      process-tree mode, against the same nginx on the host kernel over
#      the veth pair (wrk in the other namespace). Figures only; skipped
#      without nginx or wrk.
#
#   6. A statically linked throughput program through the every-syscall
#      tier: iperf3's client from libiperf.a (Debian's libiperf-dev) with a
#      main of ours, run by the launcher through lkl-loader, against the same
#      main linked with libiperf.so under LD_PRELOAD; both directions, both
#      modes. Goal: static >= 0.9 x dynamic. Skipped without libiperf.a.
#
#   bin/hijack-bench.sh [SECONDS] [ROUNDS]     (root; iperf3, cc; nginx, wrk, valgrind)
#
# LKL_BENCH_EXTRA adds top-level config keys, e.g. '"singlecpu":"1",'.
#
# Everything runs in namespaces this script creates and deletes; traffic
# stays inside them.
set -euo pipefail
secs=${1:-3}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
hijack=$here/bin/lkl-hijack.sh
lib=${LKL_HIJACK_LIB:-}
if [ -z "$lib" ]; then
	for c in "${CARGO_TARGET_DIR:-$here/target}/release/liblkl_hijack.so" "$here/target/release/liblkl_hijack.so"; do
		if [ -f "$c" ]; then lib=$c; break; fi
	done
fi
[ -n "$lib" ] && [ -f "$lib" ] || { echo "hijack-bench.sh: liblkl_hijack.so not found (cargo build --release --workspace, or set LKL_HIJACK_LIB)" >&2; exit 1; }
export LKL_HIJACK_LIB=$lib
for t in iperf3 cc ip; do
	command -v $t >/dev/null || { echo "hijack-bench.sh: $t is not installed" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "hijack-bench.sh: needs root (namespaces, taps)" >&2; exit 1; }

work=$(mktemp -d /tmp/hijack-bench.XXXXXX)
tapns=lkl-$$-btap
ns1=lkl-$$-bv1
ns2=lkl-$$-bv2
pids=()
cleanup() {
	# nginx masters (daemons: not in pids); their workers and a tree's
	# kernel server end with them.
	for f in "$work"/nginx-*/nginx.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in $tapns $ns1 $ns2; do
		ip netns del $ns 2>/dev/null || true
		rm -rf /etc/netns/$ns
	done
	rm -rf "$work"
}
trap cleanup EXIT
for ns in $tapns $ns1 $ns2; do
	ip netns add $ns
	mkdir -p /etc/netns/$ns
	echo "nameserver 127.0.0.1" >/etc/netns/$ns/resolv.conf
	ip -n $ns link set lo up
done
# The hijack's side: a tap, host 192.168.113.1, kernel .2.
ip -n $tapns tuntap add dev tap0 mode tap
ip -n $tapns addr add 192.168.113.1/24 dev tap0
ip -n $tapns link set tap0 up
cat >"$work/tap.json" <<E
{${LKL_BENCH_EXTRA:-}"interfaces":[{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":"24","offload":"0x883"}]}
E
# The host's side: a veth pair between two namespaces.
ip link add bveth1 netns $ns1 type veth peer name bveth2 netns $ns2
ip -n $ns1 addr add 10.9.0.1/24 dev bveth1
ip -n $ns2 addr add 10.9.0.2/24 dev bveth2
ip -n $ns1 link set bveth1 up
ip -n $ns2 link set bveth2 up

# The request/response client and server (C: the least overhead of its own).
cat >"$work/rr.c" <<'C'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static int nodelay(int fd) { int one = 1; return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); }
int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
	inet_pton(AF_INET, argv[2], &a.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	char c = 'x';
	if (s < 0) { perror("socket"); return 1; }
	if (!strcmp(argv[1], "server")) {
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(s, (void *)&a, sizeof a) || listen(s, 8)) { perror("bind/listen"); return 1; }
		for (;;) {
			int c2 = accept(s, 0, 0);
			if (c2 < 0) continue;
			nodelay(c2);
			while (read(c2, &c, 1) == 1 && write(c2, &c, 1) == 1)
				;
			close(c2);
		}
	}
	long n = atol(argv[4]);
	if (connect(s, (void *)&a, sizeof a)) { perror("connect"); return 1; }
	nodelay(s);
	for (int i = 0; i < 1000; i++) /* warm up */
		if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1) return 1;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++)
		if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1) { fprintf(stderr, "short round trip\n"); return 1; }
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.2f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
	return 0;
}
C
cc -O2 -o "$work/rr" "$work/rr.c"

# The null call and fork + first call (C: nothing of its own in the way).
cat >"$work/nullcall.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(void)
{
	long n = 20000;
	int forks = 100, s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0) { perror("socket"); return 1; }
	for (int i = 0; i < 1000; i++) fcntl(s, F_GETFL);
	double t0 = now();
	for (long i = 0; i < n; i++) fcntl(s, F_GETFL);
	double t1 = now();
	printf("%.3f ", (t1 - t0) / 1e3 / n);
	t0 = now();
	for (int i = 0; i < forks; i++) {
		pid_t p = fork();
		if (p == 0) { _exit(fcntl(s, F_GETFL) < 0); }
		waitpid(p, 0, 0);
	}
	t1 = now();
	printf("%.1f\n", (t1 - t0) / 1e3 / forks);
	return 0;
}
C
cc -O2 -o "$work/nullcall" "$work/nullcall.c"

ip netns exec $tapns iperf3 -s -p 5201 >/dev/null 2>&1 &
pids+=($!)
ip netns exec $ns1 iperf3 -s -p 5201 >/dev/null 2>&1 &
pids+=($!)
ip netns exec $tapns "$work/rr" server 192.168.113.1 5202 &
pids+=($!)
ip netns exec $ns1 "$work/rr" server 10.9.0.1 5202 &
pids+=($!)
# Until all four listen.
for i in $(seq 100); do
	n=$(ip netns exec $tapns ss -ltnH | wc -l)
	m=$(ip netns exec $ns1 ss -ltnH | wc -l)
	[ "$n" -ge 2 ] && [ "$m" -ge 2 ] && break
	sleep 0.05
done

# gbps JSON-FILE: the receiver's rate in Gbit/s.
gbps() {
	/usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
if "error" in j:
    sys.exit("iperf3: " + j["error"])
print("%.2f" % (j["end"]["sum_received"]["bits_per_second"] / 1e9))' "$1"
}
hijack_iperf() { ip netns exec $tapns "$hijack" --config "$work/tap.json" iperf3 -J -c 192.168.113.1 -p 5201 -t "$secs" "$@" >"$work/j" && gbps "$work/j"; }
single_iperf() { ip netns exec $tapns "$hijack" --single-process --config "$work/tap.json" iperf3 -J -c 192.168.113.1 -p 5201 -t "$secs" "$@" >"$work/j" && gbps "$work/j"; }
veth_iperf() { ip netns exec $ns2 iperf3 -J -c 10.9.0.1 -p 5201 -t "$secs" "$@" >"$work/j" && gbps "$work/j"; }
rr_n=20000
hijack_rr() { ip netns exec $tapns "$hijack" --config "$work/tap.json" "$work/rr" client 192.168.113.1 5202 $rr_n; }
single_rr() { ip netns exec $tapns "$hijack" --single-process --config "$work/tap.json" "$work/rr" client 192.168.113.1 5202 $rr_n; }
veth_rr() { ip netns exec $ns2 "$work/rr" client 10.9.0.1 5202 $rr_n; }
best_max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
best_min() { printf '%s\n' "$@" | sort -g | head -n 1; }

echo "hijack-bench: $rounds rounds, iperf3 ${secs}s each, $rr_n round trips; best round counts"
echo "  (tree: the process-tree mode, the launcher's default; single: --single-process)"
declare -a hs hr vs vr hl vl ss sr sl
for r in $(seq "$rounds"); do
	hs+=("$(hijack_iperf)"); ss+=("$(single_iperf)"); vs+=("$(veth_iperf)")
	hr+=("$(hijack_iperf -R)"); sr+=("$(single_iperf -R)"); vr+=("$(veth_iperf -R)")
	hl+=("$(hijack_rr)"); sl+=("$(single_rr)"); vl+=("$(veth_rr)")
	echo "  round $r: send ${hs[-1]}/${ss[-1]}/${vs[-1]} Gbit/s, receive ${hr[-1]}/${sr[-1]}/${vr[-1]} Gbit/s, rr ${hl[-1]}/${sl[-1]}/${vl[-1]} us (tree/single/veth)"
done
h_s=$(best_max "${hs[@]}") s_s=$(best_max "${ss[@]}") v_s=$(best_max "${vs[@]}")
h_r=$(best_max "${hr[@]}") s_r=$(best_max "${sr[@]}") v_r=$(best_max "${vr[@]}")
h_l=$(best_min "${hl[@]}") s_l=$(best_min "${sl[@]}") v_l=$(best_min "${vl[@]}")
awk -v hs="$h_s" -v ss="$s_s" -v vs="$v_s" -v hr="$h_r" -v sr="$s_r" -v vr="$v_r" -v hl="$h_l" -v sl="$s_l" -v vl="$v_l" 'BEGIN {
	printf "TCP throughput, program -> peer:  tree %6.2f  single %6.2f  veth %6.2f Gbit/s   single/veth %.2f (target >= 0.5)  tree/single %.2f (goal >= 0.8)\n", hs, ss, vs, ss / vs, hs / ss
	printf "TCP throughput, peer -> program:  tree %6.2f  single %6.2f  veth %6.2f Gbit/s   single/veth %.2f (target >= 0.5)  tree/single %.2f (goal >= 0.8)\n", hr, sr, vr, sr / vr, hr / sr
	printf "TCP 1-byte request/response:      tree %6.2f  single %6.2f  veth %6.2f us       single/veth %.2f (target <= 1.5)  tree/single %.2f (goal <= 1.3)\n", hl, sl, vl, sl / vl, hl / sl
}'
# Null call and fork + first call: the best of the rounds for each.
declare -a nt n1 nsp nh
for r in $(seq "$rounds"); do
	nt+=("$(ip netns exec $tapns "$hijack" --config "$work/tap.json" "$work/nullcall")")
	# Pinned to one CPU, neither end spins (tree/spin.rs): both sleep.
	n1+=("$(ip netns exec $tapns taskset -c 0 "$hijack" --config "$work/tap.json" "$work/nullcall")")
	nsp+=("$(ip netns exec $tapns "$hijack" --single-process --config "$work/tap.json" "$work/nullcall")")
	nh+=("$("$work/nullcall")")
done
first() { printf '%s\n' "$@" | awk '{print $1}' | sort -g | head -n 1; }
second() { printf '%s\n' "$@" | awk '{print $2}' | sort -g | head -n 1; }
awk -v t="$(first "${nt[@]}")" -v o="$(first "${n1[@]}")" -v s="$(first "${nsp[@]}")" -v h="$(first "${nh[@]}")" 'BEGIN {
	printf "null call (fcntl F_GETFL on a kernel socket): tree %.2f us (spinning up to 20 us)  tree on one CPU %.2f us (no spinning)  single %.3f us  host %.3f us (goals: tree <= 5 us spinning, <= 15 us sleeping)\n", t, o, s, h
}'
awk -v t="$(second "${nt[@]}")" -v s="$(second "${nsp[@]}")" -v h="$(second "${nh[@]}")" 'BEGIN {
	printf "fork + first kernel call + exit + wait: tree %.0f us  single %.0f us (its child gets EBADF)  host %.0f us (goal tree <= 1000 us)\n", t, s, h
}'

# nginx_conf DIR ADDR: a config under prefix DIR (pid, logs, temp files
# there), 2 workers, daemon and master process as by default, serving
# DIR/html on ADDR:8080.
nginx_conf() {
	mkdir -p "$1/html" "$1/logs" "$1/tmp"
	head -c 612 /dev/zero | tr '\0' x >"$1/html/index.html"
	cat >"$1/nginx.conf" <<E
worker_processes 2;
pid $1/nginx.pid;
error_log $1/logs/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $1/tmp/body;
	proxy_temp_path $1/tmp/proxy;
	fastcgi_temp_path $1/tmp/fastcgi;
	uwsgi_temp_path $1/tmp/uwsgi;
	scgi_temp_path $1/tmp/scgi;
	server { listen $2:8080; root $1/html; }
}
E
}
# rps NS URL: wrk's requests/s (2 threads, 50 connections, SECONDS).
rps() {
	ip netns exec "$1" wrk -t2 -c50 -d"${secs}s" "$2" >"$work/wrk" 2>&1 || true
	if grep -q "Non-2xx\|Socket errors" "$work/wrk"; then
		echo "hijack-bench.sh: wrk against $2: $(grep "Non-2xx\|Socket errors" "$work/wrk")" >&2
	fi
	awk '/^Requests\/sec:/ { print $2; f = 1 } END { if (!f) print 0 }' "$work/wrk"
}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ -x "$nginx" ] && command -v wrk >/dev/null; then
	# (workers run as nobody: they must reach the prefix)
	chmod 755 "$work"
	gt=$work/nginx-tree gv=$work/nginx-veth
	nginx_conf "$gt" 192.168.113.2
	nginx_conf "$gv" 10.9.0.1
	ip netns exec $tapns "$hijack" --config "$work/tap.json" "$nginx" -p "$gt" -c "$gt/nginx.conf" -e "$gt/logs/error.log"
	ip netns exec $ns1 "$nginx" -p "$gv" -c "$gv/nginx.conf" -e "$gv/logs/error.log"
	for i in $(seq 200); do
		ip netns exec $tapns curl -s -o /dev/null http://192.168.113.2:8080/ &&
			ip netns exec $ns2 curl -s -o /dev/null http://10.9.0.1:8080/ && break
		sleep 0.05
	done
	declare -a wt wv
	for r in $(seq "$rounds"); do
		wt+=("$(rps $tapns http://192.168.113.2:8080/)")
		wv+=("$(rps $ns2 http://10.9.0.1:8080/)")
		echo "  nginx round $r: ${wt[-1]}/${wv[-1]} requests/s (tree mode/veth)"
	done
	w_t=$(best_max "${wt[@]}") w_v=$(best_max "${wv[@]}")
	awk -v h="$w_t" -v v="$w_v" 'BEGIN {
		printf "nginx (2 workers), wrk -t2 -c50:   hijack tree mode %9.0f req/s   host over veth %9.0f req/s   ratio %.2f\n", h, v, (v > 0 ? h / v : 0)
	}'
	# The hijacked master through the attach path; the tree's kernel halts after it.
	ip netns exec $tapns "$hijack" --attach "$(cat "$gt/nginx.pid")" "$nginx" -p "$gt" -c "$gt/nginx.conf" -e "$gt/logs/error.log" -s quit || true
	ip netns exec $ns1 "$nginx" -p "$gv" -c "$gv/nginx.conf" -e "$gv/logs/error.log" -s quit || true
else
	echo "nginx requests/s: nginx or wrk not installed (apt-get install nginx-light wrk), not measured"
fi
# 6. iperf3's client, static (the tier, through lkl-loader) and dynamic
# (LD_PRELOAD), the same main.
if [ -f /usr/lib/x86_64-linux-gnu/libiperf.a ] && [ -f /usr/lib/x86_64-linux-gnu/libsctp.a ]; then
	cat >"$work/iperf_main.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <iperf_api.h>
/* iperf_main HOST PORT SECONDS [-R]: iperf3's client, JSON on stdout. */
int main(int argc, char **argv)
{
	struct iperf_test *t = iperf_new_test();
	if (argc < 4 || !t || iperf_defaults(t) < 0) return 2;
	iperf_set_test_role(t, 'c');
	iperf_set_test_server_hostname(t, argv[1]);
	iperf_set_test_server_port(t, atoi(argv[2]));
	iperf_set_test_duration(t, atoi(argv[3]));
	if (argc > 4 && !strcmp(argv[4], "-R")) iperf_set_test_reverse(t, 1);
	iperf_set_test_json_output(t, 1);
	if (iperf_run_client(t) < 0) { fprintf(stderr, "iperf: %s\n", iperf_strerror(i_errno)); return 1; }
	iperf_free_test(t);
	return 0;
}
C
	cc -O2 -o "$work/iperf-dynamic" "$work/iperf_main.c" -liperf
	# (glibc warns that a static program's getaddrinfo needs the shared NSS modules.)
	cc -O2 -static -o "$work/iperf-static" "$work/iperf_main.c" /usr/lib/x86_64-linux-gnu/libiperf.a \
		-lssl -lcrypto -lsctp -lm 2>/dev/null
	st_iperf() { ip netns exec $tapns "$hijack" "$@" --config "$work/tap.json" "$work/iperf-static" 192.168.113.1 5201 "$secs" $rev >"$work/j" && gbps "$work/j"; }
	dy_iperf() { ip netns exec $tapns "$hijack" "$@" --config "$work/tap.json" "$work/iperf-dynamic" 192.168.113.1 5201 "$secs" $rev >"$work/j" && gbps "$work/j"; }
	for mode in --single-process --tree; do
		for rev in "" -R; do
			sts=() dys=()
			for r in $(seq "$rounds"); do
				sts+=("$(st_iperf $mode || echo 0)"); dys+=("$(dy_iperf $mode || echo 0)")
			done
			s_b=$(best_max "${sts[@]}") d_b=$(best_max "${dys[@]}")
			awk -v s="$s_b" -v d="$d_b" -v m="${mode#--}" -v dir="$([ -z "$rev" ] && echo "program -> peer" || echo "peer -> program")" 'BEGIN {
				printf "iperf3 static (tier, lkl-loader) vs dynamic (LD_PRELOAD), %s, %s: %6.2f vs %6.2f Gbit/s  ratio %.2f (goal >= 0.9)\n", m, dir, s, d, (d > 0 ? s / d : 0)
			}'
		done
	done
else
	echo "iperf3 static vs dynamic: libiperf.a or libsctp.a missing (apt-get install libiperf-dev libsctp-dev), not measured"
fi
if command -v valgrind >/dev/null; then
	# (LKL_HIJACK_LIB is the launcher's: the library refuses unknown
	# LKL_HIJACK_* variables, so hook-cost.sh gets the target dir instead)
	env -u LKL_HIJACK_LIB CARGO_TARGET_DIR="$(dirname "$(dirname "$lib")")" "$here/bin/hook-cost.sh"
else
	echo "hook cost: valgrind not installed (apt-get install valgrind), not measured"
fi
