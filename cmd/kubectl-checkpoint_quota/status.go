package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

func newStatus(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [-n NAMESPACE | -A]",
		Short: "Used and hard of every limit, per quota, like kubectl describe resourcequota",
		Long: "Prints each CheckpointQuota of the namespace (every namespace with -A) and every ClusterCheckpointQuota\n" +
			"as a table of its limits: used, hard, the scope nearest the limit and whether it is in force.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.status(cmd.Context(), o.streams.Out) },
	}
	cmd.Flags().BoolVarP(&o.all, "all-namespaces", "A", false, "Quotas of every namespace.")
	o.print.AddFlags(cmd)
	return cmd
}

func (o *options) status(ctx context.Context, out io.Writer) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	if !o.all {
		ns, err := o.namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(ns))
	}
	var cqs cqv1.CheckpointQuotaList
	if err := c.List(ctx, &cqs, opts...); err != nil {
		return err
	}
	var ccqs cqv1.ClusterCheckpointQuotaList
	if err := c.List(ctx, &ccqs); err != nil {
		return err
	}
	var objs []runtime.Object
	for i := range ccqs.Items {
		objs = append(objs, &ccqs.Items[i])
	}
	for i := range cqs.Items {
		objs = append(objs, &cqs.Items[i])
	}
	if printed, err := o.printObject(asList(objs), out); printed {
		return err
	}
	if len(objs) == 0 {
		_, err := fmt.Fprintln(out, "No quotas found.")
		return err
	}
	w := &writer{w: out}
	for i, obj := range objs {
		if i > 0 {
			w.println("")
		}
		switch q := obj.(type) {
		case *cqv1.ClusterCheckpointQuota:
			printQuota(w, "ClusterCheckpointQuota "+q.Name, q.Spec.Enforcement, &q.Status)
		case *cqv1.CheckpointQuota:
			printQuota(w, "CheckpointQuota "+q.Namespace+"/"+q.Name, q.Spec.Enforcement, &q.Status)
		}
	}
	return w.err
}

// printQuota prints a heading, the status's usage table and what its conditions say when
// something needs attention.
func printQuota(out *writer, title string, mode cqv1.EnforcementMode, st *cqv1.QuotaStatus) {
	out.printf("%s (%s)\n", title, mode)
	ready := meta.FindStatusCondition(st.Conditions, cqv1.ConditionReady)
	if len(st.UsageTable) == 0 && (ready == nil || ready.Status == metav1.ConditionTrue) {
		out.println("  no limits reported yet (is the manager running?)")
	}
	for _, line := range st.UsageTable {
		out.println("  " + line)
	}
	if st.Summary.Remote != "" {
		out.println("  on nodes: " + st.Summary.Checkpoints + ", " + st.Summary.Storage + "; in CheckpointStores: " + st.Summary.Remote)
	}
	if pods := nearestScopes(st); pods != "" {
		out.println("  nearest their limits: " + pods)
	}
	for _, t := range []string{cqv1.ConditionOverQuota, cqv1.ConditionConflict} {
		if c := meta.FindStatusCondition(st.Conditions, t); c != nil && c.Status == metav1.ConditionTrue {
			out.printf("  %s: %s\n", t, c.Message)
		}
	}
	if ready != nil && ready.Status != metav1.ConditionTrue {
		out.printf("  not ready: %s\n", ready.Message)
	}
}

// nearestScopes lists the containers, else pods, else namespaces nearest their limits.
func nearestScopes(st *cqv1.QuotaStatus) string {
	var parts []string
	for i, c := range st.Containers {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s/%s/%s %d (%s)", c.Namespace, c.Pod, c.Container, c.Checkpoints, c.Storage.String()))
	}
	if len(parts) == 0 {
		for i, p := range st.Pods {
			if i == 3 {
				break
			}
			parts = append(parts, fmt.Sprintf("%s/%s %d (%s)", p.Namespace, p.Pod, p.Checkpoints, p.Storage.String()))
		}
	}
	return strings.Join(parts, ", ")
}
