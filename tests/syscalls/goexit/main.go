// Writes argv[2] bytes to the TCP peer argv[1] and exits at once with
// os.Exit (Go's runtime: a raw exit_group), without closing the socket:
// the peer must still receive every byte, as on the host (the kernel
// sends what is queued after the process is gone).
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	if _, err := c.Write(buf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("written", n)
	os.Exit(0)
}
