package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// NodeUsage is one node's archives as the Checkpoint objects show them.
type NodeUsage struct {
	metav1.TypeMeta `json:",inline"`
	Node            string `json:"node"`
	Archives        int64  `json:"archives"`
	Bytes           int64  `json:"bytes"`
	Unreadable      int64  `json:"unreadable"`
	Pinned          int64  `json:"pinned"`
	Orphans         int64  `json:"orphans"`
	// FilesystemFree and FilesystemFreePercent are the free space of the node's fullest
	// checkpoint filesystem, from its agent's CheckpointNode; empty without one.
	FilesystemFree        string `json:"filesystemFree,omitempty"`
	FilesystemFreePercent string `json:"filesystemFreePercent,omitempty"`
}

// DeepCopyObject makes NodeUsage printable by the -o printers.
func (n *NodeUsage) DeepCopyObject() runtime.Object { c := *n; return &c }

func newNodes(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Archives, bytes, unreadable and pinned archives, and free space per node",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.nodes(cmd.Context(), o.streams.Out) },
	}
	o.print.AddFlags(cmd)
	return cmd
}

func (o *options) nodes(ctx context.Context, out io.Writer) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	var cps cqv1.CheckpointList
	if err := c.List(ctx, &cps); err != nil {
		return err
	}
	byNode := map[string]*NodeUsage{}
	row := func(node string) *NodeUsage {
		n := byNode[node]
		if n == nil {
			n = &NodeUsage{TypeMeta: metav1.TypeMeta{APIVersion: cqv1.GroupVersion.String(), Kind: "NodeUsage"}, Node: node}
			byNode[node] = n
		}
		return n
	}
	for i := range cps.Items {
		cp := &cps.Items[i]
		node := "(unknown: published by an agent before v0.3)"
		a, ok := quota.ArchiveOf(cp)
		if ok {
			node = a.Node
		}
		n := row(node)
		n.Archives++
		n.Bytes += a.Size
		if cp.IsUnreadable() {
			n.Unreadable++
		}
		if cp.IsPinned() {
			n.Pinned++
		}
		if cp.Spec.Archive != nil && cp.Spec.Archive.OrphanOf != "" {
			n.Orphans++
		}
	}
	// Free space comes from the agents' CheckpointNodes. Without them (agents older than
	// v0.4, or a user who may not list them) the columns stay empty: the archives are still
	// worth printing.
	var cns cqv1.CheckpointNodeList
	if err := c.List(ctx, &cns); err != nil {
		_, _ = fmt.Fprintf(o.streams.ErrOut, "Warning: no free space shown: listing checkpointnodes: %v\n", err)
	}
	for i := range cns.Items {
		n := row(cns.Items[i].Name)
		n.FilesystemFree, n.FilesystemFreePercent = cns.Items[i].Status.Free, cns.Items[i].Status.FreePercent
	}
	var rows []*NodeUsage
	for _, n := range byNode {
		rows = append(rows, n)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Node < rows[j].Node })
	objs := make([]runtime.Object, len(rows))
	for i, r := range rows {
		objs[i] = r
	}
	if printed, err := o.printObject(asList(objs), out); printed {
		return err
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(out, "No checkpoints found.")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	w := &writer{w: tw}
	w.println("NODE\tARCHIVES\tBYTES\tUNREADABLE\tPINNED\tORPHANS\tFS-FREE\tFS-FREE%")
	for _, r := range rows {
		w.printf("%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\n", r.Node, r.Archives, quota.Bytes(r.Bytes), r.Unreadable, r.Pinned, r.Orphans,
			orDash(r.FilesystemFree), orDash(r.FilesystemFreePercent))
	}
	if w.err != nil {
		return w.err
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
