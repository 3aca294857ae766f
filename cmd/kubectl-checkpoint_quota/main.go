// Command kubectl-checkpoint_quota is the kubectl plugin of checkpoint-quota:
// `kubectl checkpoint-quota status|explain|nodes|convert|fetch`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := newRoot(streams).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// options are the flags every command shares: kubectl's connection flags and -o.
type options struct {
	config  *genericclioptions.ConfigFlags
	print   *genericclioptions.PrintFlags
	streams genericiooptions.IOStreams
	all     bool
}

func newRoot(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{
		config:  genericclioptions.NewConfigFlags(true),
		print:   genericclioptions.NewPrintFlags("").WithTypeSetter(scheme()),
		streams: streams,
	}
	root := &cobra.Command{
		Use:           "kubectl-checkpoint_quota",
		Short:         "Checkpoint quotas: usage, why an archive is kept or pruned, nodes, and migration from CRIU's operator",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	o.config.AddFlags(root.PersistentFlags())
	root.AddCommand(newStatus(o), newExplain(o), newNodes(o), newConvert(o), newFetch(o))
	return root
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = cqv1.AddToScheme(s)
	return s
}

// client reaches the cluster the kubeconfig flags name.
func (o *options) client() (client.Client, error) {
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme()})
}

// checkpoint reads the Checkpoint name of -n's namespace, with the client that read it.
func (o *options) checkpoint(ctx context.Context, name string) (client.Client, string, *cqv1.Checkpoint, error) {
	c, err := o.client()
	if err != nil {
		return nil, "", nil, err
	}
	ns, err := o.namespace()
	if err != nil {
		return nil, "", nil, err
	}
	cp := &cqv1.Checkpoint{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cp); err != nil {
		return nil, "", nil, err
	}
	return c, ns, cp, nil
}

// namespace is -n, else the kubeconfig context's namespace.
func (o *options) namespace() (string, error) {
	ns, _, err := o.config.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// printObject prints obj with -o (json, yaml...) and reports whether -o was given.
func (o *options) printObject(obj runtime.Object, out io.Writer) (bool, error) {
	if o.print.OutputFormat == nil || *o.print.OutputFormat == "" {
		return false, nil
	}
	p, err := o.print.ToPrinter()
	if err != nil {
		return true, err
	}
	return true, p.PrintObj(obj, out)
}
