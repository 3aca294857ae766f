// Command workload is the process the node suite checkpoints: it holds -mib MiB of memory,
// every page written so that it is resident and CRIU must dump it, and counts seconds on
// its standard output, so that a restored copy shows where it went on.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	mib := flag.Int("mib", 8, "MiB of memory to hold resident")
	flag.Parse()
	held := make([]byte, *mib<<20)
	for i := 0; i < len(held); i += 4096 {
		held[i] = byte(i >> 12)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(time.Second)
	for n := 0; ; n++ {
		select {
		case <-stop:
			fmt.Println("stopped at", n, "holding", len(held)>>20, "MiB")
			return
		case <-tick.C:
			fmt.Println("tick", n)
		}
	}
}
