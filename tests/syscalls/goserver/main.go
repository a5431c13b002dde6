// A Go net/http server on the address given (built with and without cgo):
// accept4, epoll_pwait, read/write, all through the system-call tier. It
// exits (os.Exit: Go's own exit_group) when asked for /quit, so that the
// tier prints its counters (LKL_HIJACK_REWRITE=stats): the share of its
// calls that went through rewritten sites (tests/hijack_rewrite.rs).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	body := strings.Repeat("0123456789abcdef", 4096)
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quit" {
			w.Write([]byte("bye"))
			go func() {
				time.Sleep(200 * time.Millisecond)
				os.Exit(0)
			}()
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		w.Header().Set("X-Peer", host)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body))
	}))
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(1)
}
