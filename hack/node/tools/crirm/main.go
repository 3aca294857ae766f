// Command crirm stops and removes every pod sandbox of a CRI runtime, through the CRI, so
// that the runtime tears down each pod's network (CNI DEL) and unmounts its namespaces,
// which killing the processes would leave behind. The node's teardown runs it after the
// kubelet has stopped:
//
//	crirm unix:///path/to/containerd.sock
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: crirm unix:///path/to/runtime.sock")
		os.Exit(2)
	}
	if err := removeAll(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "crirm:", err)
		os.Exit(1)
	}
}

func removeAll(endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := cri.NewRuntimeServiceClient(conn)
	pods, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("listing pod sandboxes at %s: %w", endpoint, err)
	}
	var failed int
	for _, p := range pods.Items {
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "crirm: stopping pod %s/%s: %v\n", p.Metadata.Namespace, p.Metadata.Name, err)
			failed++
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "crirm: removing pod %s/%s: %v\n", p.Metadata.Namespace, p.Metadata.Name, err)
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d pod sandboxes could not be removed", failed, len(pods.Items))
	}
	return nil
}
