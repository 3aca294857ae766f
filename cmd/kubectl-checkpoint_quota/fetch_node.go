package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
)

// fetchToOtherNode asks the agent of node, which is not the archive's, for a copy
// (LabelFetchTo) and waits until that agent has published the copy as a Checkpoint of its
// node whose spec.archive.copyOf names cp.
func (o *options) fetchToOtherNode(ctx context.Context, c client.Client, cp *cqv1.Checkpoint, node string, timeout time.Duration) error {
	ns, name := cp.Namespace, cp.Name
	if of := cp.Spec.Archive.CopyOf; of != nil {
		return fmt.Errorf("checkpoint %s/%s is a copy on node %s: fetch its stored Checkpoint %s/%s", ns, name, cp.Spec.Archive.NodeName, of.Namespace, of.Name)
	}
	if cp2, err := copyOn(ctx, c, cp, node); err != nil || cp2 != nil {
		if err != nil {
			return err
		}
		_, err := fmt.Fprintf(o.streams.Out, "a copy of %s/%s is on node %s already: Checkpoint %s/%s\n", ns, name, node, cp2.Namespace, cp2.Name)
		return err
	}
	asked := time.Now().Add(-time.Second)
	patch := client.MergeFrom(cp.DeepCopy())
	if cp.Labels == nil {
		cp.Labels = map[string]string{}
	}
	cp.Labels[cqv1.LabelFetchTo] = nodeagent.FetchToValue(node)
	if err := c.Patch(ctx, cp, patch); err != nil {
		return fmt.Errorf("asking for a copy of %s/%s on node %s: %w", ns, name, node, err)
	}
	said, err := o.waitForAgent(ctx, timeout, func(ctx context.Context) (bool, string, error) {
		copied, err := copyOn(ctx, c, cp, node)
		if err != nil {
			return false, "", err
		}
		if copied != nil {
			_, err := fmt.Fprintf(o.streams.Out, "a copy of %s/%s (UID %s) is on node %s as %s/%s, Checkpoint %s/%s, marked a copy: "+
				"it counts there and the limits free it first; the archive stays in CheckpointStore %s\n",
				ns, name, cp.UID, node, copied.Spec.Archive.Directory, copied.Spec.Archive.FileName, copied.Namespace, copied.Name, cp.Status.Location.Store)
			return true, "", err
		}
		e, err := lastFetchEvent(ctx, c, cp, asked)
		switch {
		case err != nil:
			return false, "", err
		case e != nil && e.Reason == nodeagent.ReasonFetchRefused:
			return false, "", fmt.Errorf("the node agent of %s refused the copy of %s/%s: %s", node, ns, name, e.Message)
		case e != nil && e.Reason == nodeagent.ReasonFetchFailed:
			return false, e.Message, nil
		}
		return false, "", nil
	})
	switch {
	case !errors.Is(err, errAgentTooSlow):
		return err
	case said != "":
		return fmt.Errorf("the node agent of %s did not bring a copy of %s/%s within %s: %s", node, ns, name, timeout, said)
	}
	return fmt.Errorf("the node agent of %s did not bring a copy of %s/%s within %s (is there an agent on %s?); the request stays (label %s)",
		node, ns, name, timeout, node, cqv1.LabelFetchTo)
}

// copyOn returns the Checkpoint of node that is a copy of cp, if there is one.
func copyOn(ctx context.Context, c client.Client, cp *cqv1.Checkpoint, node string) (*cqv1.Checkpoint, error) {
	var list cqv1.CheckpointList
	if err := c.List(ctx, &list, client.InNamespace(cp.Namespace), client.MatchingFields{cqv1.FieldArchiveNode: node}); err != nil {
		return nil, fmt.Errorf("looking for the copy on node %s: %w", node, err)
	}
	for i := range list.Items {
		if a := list.Items[i].Spec.Archive; a != nil && a.CopyOf != nil && a.CopyOf.UID == cp.UID && list.Items[i].DeletionTimestamp.IsZero() {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// lastFetchEvent is the newest event since asked of a node agent's fetch of cp.
func lastFetchEvent(ctx context.Context, c client.Client, cp *cqv1.Checkpoint, asked time.Time) (*corev1.Event, error) {
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(cp.Namespace), client.MatchingFields{"involvedObject.uid": string(cp.UID)}); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, nil // the wait goes on without the agent's reasons
		}
		return nil, err
	}
	var last *corev1.Event
	var lastAt time.Time
	for i := range events.Items {
		e := &events.Items[i]
		if e.Reason != nodeagent.ReasonFetchRefused && e.Reason != nodeagent.ReasonFetchFailed {
			continue
		}
		at := e.EventTime.Time
		if e.LastTimestamp.After(at) {
			at = e.LastTimestamp.Time
		}
		if e.Series != nil && e.Series.LastObservedTime.After(at) {
			at = e.Series.LastObservedTime.Time
		}
		if at.After(asked) && (last == nil || at.After(lastAt)) {
			last, lastAt = e, at
		}
	}
	return last, nil
}
