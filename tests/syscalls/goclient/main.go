// A Go HTTP client: built with cgo it is dynamically linked (net uses
// libc's resolver), without it static; either way its runtime makes its
// own system calls, which only the system-call tier routes.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	resp, err := http.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "get:", err)
		os.Exit(1)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
	fmt.Printf("status %d bytes %d peer-saw %s\n", resp.StatusCode, n, resp.Header.Get("X-Peer"))
}
