package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointstores/status,verbs=get;update;patch

// Reasons of a CheckpointStore's conditions.
const (
	ReasonEveryNodeCan  = "EveryNode"
	ReasonSomeNodeCant  = "NodesFailing"
	ReasonNotCheckedYet = "NotChecked"
)

// maxNamedNodes bounds the nodes a condition's message names.
const maxNamedNodes = 5

// StoreStatusReconciler writes each CheckpointStore's status: what it holds, from the
// Checkpoints whose status.location names it, and whether the nodes reach and write it,
// from each node's check in its CheckpointNode (status.stores).
type StoreStatusReconciler struct {
	Client client.Client
}

// Reconcile writes one store's status when it changed.
func (r *StoreStatusReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var store cqv1.CheckpointStore
	if err := r.Client.Get(ctx, req.NamespacedName, &store); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var cps cqv1.CheckpointList
	if err := r.Client.List(ctx, &cps, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, err
	}
	var nodes cqv1.CheckpointNodeList
	if err := r.Client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, err
	}
	st := storeStatus(&store, cps.Items, nodes.Items)
	if equality.Semantic.DeepEqual(store.Status, st) {
		return reconcile.Result{}, nil
	}
	patch := client.MergeFromWithOptions(store.DeepCopy(), client.MergeFromWithOptimisticLock{})
	store.Status = st
	if err := r.Client.Status().Patch(ctx, &store, patch); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("writing the status of CheckpointStore %s: %w", store.Name, err)
	}
	return reconcile.Result{}, nil
}

// storeStatus is a store's status from the world; conditions keep their transition time
// while their status stays. The store is not changed: its conditions are copied, since
// meta.SetStatusCondition changes a condition in place, and the store's status is what the
// caller compares with and patches from.
func storeStatus(store *cqv1.CheckpointStore, cps []cqv1.Checkpoint, nodes []cqv1.CheckpointNode) cqv1.CheckpointStoreStatus {
	st := cqv1.CheckpointStoreStatus{Conditions: slices.Clone(store.Status.Conditions)}
	for i := range cps {
		c := &cps[i]
		if c.Status.Location != nil && c.Status.Location.Store == store.Name && c.Spec.Archive != nil {
			st.Objects++
			st.Bytes += c.Spec.Archive.SizeBytes
		}
	}
	st.Size = quota.Bytes(st.Bytes)
	var checked, unreachable, unwritable []string
	messages := map[string]string{}
	for i := range nodes {
		for _, chk := range nodes[i].Status.Stores {
			if chk.Store != store.Name {
				continue
			}
			checked = append(checked, nodes[i].Name)
			messages[nodes[i].Name] = chk.Message
			if !chk.Reachable {
				unreachable = append(unreachable, nodes[i].Name)
			}
			if !chk.Writable {
				unwritable = append(unwritable, nodes[i].Name)
			}
		}
	}
	setStoreCondition(&st, store.Generation, cqv1.StoreConditionReachable, "reach", checked, unreachable, messages)
	setStoreCondition(&st, store.Generation, cqv1.StoreConditionWritable, "write to", checked, unwritable, messages)
	return st
}

func setStoreCondition(st *cqv1.CheckpointStoreStatus, generation int64, kind, verb string, checked, failing []string, messages map[string]string) {
	c := metav1.Condition{Type: kind, ObservedGeneration: generation}
	switch {
	case len(checked) == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, ReasonNotCheckedYet, "no node agent has checked the store yet"
	case len(failing) == 0:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonEveryNodeCan
		c.Message = fmt.Sprintf("every node that checked (%d) can %s the store", len(checked), verb)
	default:
		sort.Strings(failing)
		named := failing
		if len(named) > maxNamedNodes {
			named = named[:maxNamedNodes]
		}
		parts := make([]string, 0, len(named))
		for _, n := range named {
			parts = append(parts, n+": "+messages[n])
		}
		c.Status, c.Reason = metav1.ConditionFalse, ReasonSomeNodeCant
		c.Message = fmt.Sprintf("%d of %d nodes cannot %s the store; %s", len(failing), len(checked), verb, strings.Join(parts, "; "))
		if len(c.Message) > 2000 {
			c.Message = c.Message[:2000]
		}
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// SetupWithManager watches stores, the Checkpoints that name one, and CheckpointNodes.
func (r *StoreStatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		return errors.New("store status controller: Client is required")
	}
	byLocation := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		c, ok := obj.(*cqv1.Checkpoint)
		if !ok || c.Status.Location == nil {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: c.Status.Location.Store}}}
	})
	allStores := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list cqv1.CheckpointStoreList
		if err := r.Client.List(ctx, &list); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for _, s := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: s.Name}})
		}
		return out
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("checkpointstore-status").
		For(&cqv1.CheckpointStore{}).
		Watches(&cqv1.Checkpoint{}, byLocation).
		Watches(&cqv1.CheckpointNode{}, allStores).
		Complete(r)
}
