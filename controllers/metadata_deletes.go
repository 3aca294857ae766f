package controllers

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// metadataDeletes is a client whose deletes of a PartialObjectMetadata go out as client-go's
// metadata client sends them: the apiserver answers with the deleted object's metadata
// (protobuf), and nothing of the answer is decoded but an error. controller-runtime's own
// client decodes the whole deleted object from JSON, encodes it to JSON again and decodes
// that into a map, for every delete; pruning sends one per archive (issue 31).
type metadataDeletes struct {
	client.Client
	md metadata.Interface
}

// withMetadataDeletes wraps c so that its deletes of a PartialObjectMetadata go through a
// metadata client of cfg.
func withMetadataDeletes(c client.Client, cfg *rest.Config) (client.Client, error) {
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("a metadata client for deletes: %w", err)
	}
	return metadataDeletes{Client: c, md: md}, nil
}

// Delete sends the delete of a PartialObjectMetadata through the metadata client, and
// anything else through the wrapped client.
func (c metadataDeletes) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	p, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return c.Client.Delete(ctx, obj, opts...)
	}
	gvk := p.GroupVersionKind()
	mapping, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	o := client.DeleteOptions{}
	o.ApplyOptions(opts)
	return c.md.Resource(mapping.Resource).Namespace(p.Namespace).Delete(ctx, p.Name, *o.AsDeleteOptions())
}
