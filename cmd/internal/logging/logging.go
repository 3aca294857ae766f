// Package logging builds the binaries' logger: controller-runtime's zap logger whose
// key/value pairs are encoded only when a line is written.
package logging

import (
	"flag"

	"github.com/go-logr/logr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// BindFlags adds the --zap-* flags to fs with production defaults (JSON, info level) and
// returns the options they set. Only --zap-devel turns on development mode, in which zap
// panics on a malformed key/value call: a log line must never stop the process.
func BindFlags(fs *flag.FlagSet) *zap.Options {
	opts := &zap.Options{Development: false}
	opts.BindFlags(fs)
	return opts
}

// New is the logger that opts (the --zap-* flags) describe, with lazy key/value pairs.
func New(opts *zap.Options) logr.Logger {
	return zap.New(zap.UseFlagOptions(opts), zap.RawZapOpts(uberzap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return lazyCore{c}
	})))
}

// lazyCore defers the encoding of the fields a logger is given (WithValues) until it writes
// a line. controller-runtime gives every reconcile a logger with the request and a
// reconcile ID; zap encodes those at once, into a buffer of its own, and at the info level
// nearly every such logger writes nothing: in the node agent that was a twelfth of what it
// allocated per published archive. A value is encoded when a line is written, so it must
// not change after it is given: callers give strings and other values, never a pointer to
// something that changes.
type lazyCore struct {
	zapcore.Core
}

// With keeps the fields with the core for when a line is written (zap's own lazy core),
// and stays lazy for the fields added after them.
func (c lazyCore) With(fields []zapcore.Field) zapcore.Core {
	return lazyCore{zapcore.NewLazyWith(c.Core, fields)}
}
