// A cgo-enabled (dynamically linked) Go client: its runtime makes its own
// system calls, which only the system-call tier routes.
package main

// #include <stdlib.h>
import "C"

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	C.free(C.malloc(1))
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
