// Command svcproxy forwards TCP connections from one address to another. The test node runs
// no kube-proxy: svcproxy listens on the kubernetes Service's cluster IP, port 443, and
// forwards to the kube-apiserver, which is all that pods on a node need of the Service
// network (in-cluster clients dial KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT).
//
//	svcproxy 10.223.0.1:443 10.222.0.1:6443
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: svcproxy LISTEN_ADDR TARGET_ADDR")
		os.Exit(2)
	}
	l, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "svcproxy:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-stop; _ = l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go forward(c, os.Args[2])
	}
}

func forward(c net.Conn, target string) {
	defer c.Close()
	t, err := net.Dial("tcp", target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "svcproxy:", err)
		return
	}
	defer t.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(t, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, t); done <- struct{}{} }()
	<-done
}
