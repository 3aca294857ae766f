package certs

import (
	"context"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Bootstrap runs the start-up of Setup with the given reader and writer, for the specs of
// races between replicas.
func Bootstrap(ctx context.Context, reader client.Reader, writer client.Writer, cr *rotator.CertRotator, log logr.Logger) error {
	return (&bootstrap{reader: reader, writer: writer, cr: cr, log: log}).run(ctx)
}
