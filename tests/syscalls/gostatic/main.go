// A pure Go program (CGO_ENABLED=0 builds it static).
package main

import "fmt"

func main() { fmt.Println("static go") }
