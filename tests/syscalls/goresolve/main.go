// Resolves argv[1] with Go's own resolver (it reads /etc/resolv.conf
// itself) and prints its addresses.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
)

func main() {
	r := &net.Resolver{PreferGo: true}
	addrs, err := r.LookupHost(context.Background(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "lookup:", err)
		os.Exit(1)
	}
	fmt.Println("resolved", addrs)
}
