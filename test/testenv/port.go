package testenv

import (
	"net"
	"testing"
)

// FreePort is a TCP port on the loopback that nothing listens on at the moment, for a
// process that a test starts with a listen address.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
