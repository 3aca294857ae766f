package main

import (
	"fmt"
	"io"
)

// writer prints lines and keeps the first error, so that a command reports a failed write
// (a closed pipe) once, at its end.
type writer struct {
	w   io.Writer
	err error
}

func (w *writer) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.w, format, args...)
	}
}

func (w *writer) println(s string) { w.printf("%s\n", s) }
