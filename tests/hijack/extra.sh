# Our own checks over the tap (sourced by run.sh after T23, before the
# taps go): what issue 4 asks beyond LKL's catalogue. IPv4-only config, so
# no case waits for IPv6 duplicate address detection.

cat >v4.json <<E
{"interfaces":[{"type":"tap","param":"tap0","ip":"$LKL0","masklen":"24","offload":"0x883"}]}
E
head -c 3000000 /dev/urandom >blob
mkdir -p www && cp blob www/blob
if [ -n "$tap_ns" ]; then
	helper "$tap_ns" "$python" -m http.server 8080 --bind "$HOST0" --directory "$work/www" >/dev/null 2>&1
fi
sum() { sha256sum "$1" | cut -d' ' -f1; }

# curl through the kernel from a host HTTP server on the tap address.
x1() {
	need_tap
	need curl
	wait_tcp "$tap_ns" "$HOST0" 8080
	lkl "$tap_ns" v4.json curl -sS --max-time 20 -o got "http://$HOST0:8080/blob" || fail "curl: $?"
	[ "$(sum got)" = "$(sum blob)" ] || fail "SHA-256 differs: $(stat -c %s got) bytes fetched"
	echo "3000000 bytes, SHA-256 matches"
}
# nc relaying a pipe on stdin to a kernel socket and a kernel socket to
# stdout: openbsd nc polls stdin (host) and its socket (kernel) together.
x2() {
	need_tap
	need nc
	host "$tap_ns" timeout 20 nc -l "$HOST0" 11230 >recv &
	local srv=$!
	wait_tcp_quiet "$tap_ns" "$HOST0" 11230 || true
	# (slow pipe: stdin is not ready at once, so poll really waits on both)
	{ sleep 0.2; cat blob; } | lkl_for 20 "$tap_ns" v4.json nc -N "$HOST0" 11230 || fail "hijacked nc (sending): $?"
	wait $srv
	[ "$(sum recv)" = "$(sum blob)" ] || fail "host received other bytes ($(stat -c %s recv))"
	# The other way: the hijacked nc listens in the kernel, writes to stdout.
	lkl_for 20 "$tap_ns" v4.json nc -l "$LKL0" 11231 >recv2 &
	local k=$! i
	for i in $(seq 100); do
		host "$tap_ns" nc -N -w 5 "$LKL0" 11231 <blob 2>/dev/null && break
		sleep 0.05
	done
	wait $k || fail "hijacked nc (listening): exit $?"
	[ "$(sum recv2)" = "$(sum blob)" ] || fail "hijacked nc wrote other bytes ($(stat -c %s recv2))"
	echo "both directions: SHA-256 matches"
}
# wait_tcp without connecting to a one-shot server (nc -l would take the
# probe as its client): wait for the listening socket in ss.
wait_tcp_quiet() {
	local i
	for i in $(seq 200); do
		host "$1" ss -ltnH "src $2:$3" 2>/dev/null | grep -q . && return 0
		sleep 0.05
	done
	return 1
}
# tcpdump under the hijack sees the kernel's own traffic on eth0: the host
# pings the kernel, the kernel answers, tcpdump (same process) captures
# both. libpcap needs a mapped TPACKET ring; the hijack emulates one
# (src/hijack/net/packet.rs).
x3() {
	need_tap
	need tcpdump
	lkl_for 20 "$tap_ns" v4.json tcpdump -i eth0 -c 4 -n -l -w cap.pcap icmp 2>td.err &
	local k=$! i
	for i in $(seq 100); do grep -q listening td.err && break; sleep 0.05; done
	host "$tap_ns" ping -c 2 -i 0.2 -W 1 "$LKL0" >/dev/null || fail "host ping"
	wait $k || { cat td.err; fail "tcpdump: exit $?"; }
	tcpdump -n -r cap.pcap >td.out 2>/dev/null || fail "cannot read the capture back"
	cat td.out
	has td.out "$HOST0 > $LKL0: ICMP echo request" "$LKL0 > $HOST0: ICMP echo reply"
	[ "$(wc -l <td.out)" = 4 ] || fail "$(wc -l <td.out) packets, not 4"
}
# A forking server under the hijack: each child inherits the accepted
# connection, but the kernel stayed in the parent, so the child's kernel
# descriptors are EBADF (it can still use host ones: files, pipes,
# stdout) and new sockets fail with ENETDOWN; its handler fails at once.
# The parent closes its copy of the connection as ForkingTCPServer does,
# which ends the connection: clients get EOF, nobody hangs, and the
# parent goes on serving.
x4() {
	need_tap
	cat >fork.py <<-'P'
		import os, socketserver, sys
		class H(socketserver.BaseRequestHandler):
		    def handle(self):
		        self.request.sendall(b"hello\n")
		socketserver.ForkingTCPServer.allow_reuse_address = True
		srv = socketserver.ForkingTCPServer((sys.argv[1], 11232), H)
		print("serving", os.getpid(), flush=True)
		srv.serve_forever()
	P
	lkl_for 30 "$tap_ns" v4.json "$python" fork.py "$LKL0" >fork.out 2>fork.err &
	local k=$! i
	for i in $(seq 100); do grep -q serving fork.out && break; sleep 0.05; done
	for i in 1 2 3; do
		host "$tap_ns" timeout 5 "$python" -c "
import socket; c = socket.create_connection(('$LKL0', 11232), 5)
c.settimeout(5); d = c.recv(100); print('client $i got', repr(d))" || fail "client $i hung or failed"
	done
	kill -0 $k 2>/dev/null || fail "the server died"
	# (SIGTERM: a background job of a script ignores SIGINT)
	local pid
	pid=$(awk '/serving/ { print $2 }' fork.out)
	kill -TERM "$pid"
	for i in $(seq 100); do kill -0 $k 2>/dev/null || break; sleep 0.05; done
	! kill -0 $k 2>/dev/null || { kill -9 "$pid"; fail "the server ignored SIGTERM"; }
	grep -c "Bad file descriptor" fork.err | sed 's/^/children that saw EBADF: /'
	if [ "$mode" = single ]; then
		# The kernel stays in the parent: its children get EBADF.
		grep -q "Bad file descriptor" fork.err || fail "no child reported EBADF: $(tail -n 3 fork.err)"
	else
		# One kernel for the tree: every child served its client.
		! grep -q "Bad file descriptor" fork.err || fail "a child saw EBADF: $(tail -n 3 fork.err)"
	fi
}
# getifaddrs and if_nameindex answer for the kernel's interfaces.
x5() {
	need_tap
	lkl "$tap_ns" v4.json "$python" "$here/ifaddrs.py" >out || fail "ifaddrs.py: $?"
	cat out
	has out "lo 17 ll1:" "eth0 17 ll2:" "lo 2 127.0.0.1 255.0.0.0" \
		"eth0 2 $LKL0 255.255.255.0 192.168.113.255" "lo 10 ::1" \
		"if_nameindex [(1, 'lo'), (2, 'eth0')]"
	lacks out tap0
}
case_ X1 curl_sha256_over_tap x1
case_ X2 nc_relays_stdin_and_stdout x2
case_ X3 tcpdump_sees_kernel_traffic x3
case_ X4 forking_server_does_not_hang x4
case_ X5 getifaddrs_lists_kernel_interfaces x5
