// Command callsite is TestCallSite's binary: functions that call another
// once, twice and not at all.
package main

import "os"

//go:noinline
func target(n int) int { return n * 3 }

//go:noinline
func once(n int) int { return target(n+1) + 1 }

//go:noinline
func twice(n int) int { return target(n) + target(n+2) }

func main() { os.Exit(once(len(os.Args)) + twice(1) - 22) }
