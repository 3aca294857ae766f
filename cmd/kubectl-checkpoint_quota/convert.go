package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/convert"
)

func newConvert(o *options) *cobra.Command {
	var file, unit, enforcement string
	cmd := &cobra.Command{
		Use:   "convert -f CR.yaml",
		Short: "Turn a criu.org/v1 CheckpointRestoreOperator into equivalent quotas",
		Long: "Writes a ClusterCheckpointQuota for globalPolicy and a CheckpointQuota for each namespace, pod and container\n" +
			"policy, to apply with kubectl apply -f -. Each field whose meaning changes is named on stderr as a Warning.",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			in := o.streams.In
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }()
				in = f
			}
			data, err := io.ReadAll(in)
			if err != nil {
				return err
			}
			res, err := convert.Convert(data, convert.Options{SizeUnit: convert.SizeUnit(unit), Enforcement: cqv1.EnforcementMode(enforcement)})
			if err != nil {
				return err
			}
			errOut := &writer{w: o.streams.ErrOut}
			for _, w := range res.Warnings {
				errOut.printf("Warning: %s\n", w)
			}
			var objs []runtime.Object
			if res.Cluster != nil {
				objs = append(objs, res.Cluster)
			}
			for _, q := range res.Namespaced {
				objs = append(objs, q)
			}
			if printed, err := o.printObject(asList(objs), o.streams.Out); printed {
				return err
			}
			for i, obj := range objs {
				b, err := manifest(obj)
				if err != nil {
					return err
				}
				if i > 0 {
					if _, err := fmt.Fprintln(o.streams.Out, "---"); err != nil {
						return err
					}
				}
				if _, err := o.streams.Out.Write(b); err != nil {
					return err
				}
			}
			return errOut.err
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "-", "The CheckpointRestoreOperator (- for stdin).")
	cmd.Flags().StringVar(&unit, "size-unit", string(convert.Mebibytes), "How bare sizes are read: Mi (as the old docs say MB), M, or bytes (as the old operator did).")
	cmd.Flags().StringVar(&enforcement, "enforcement", string(cqv1.EnforcementEnforce), "Enforcement of the quotas written: Enforce or DryRun (report what would go, delete nothing).")
	o.print.AddFlags(cmd)
	return cmd
}

// manifest is obj as YAML to apply: without the empty status and creationTimestamp that a
// typed object carries.
func manifest(obj runtime.Object) ([]byte, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(u, "status")
	if m, ok := u["metadata"].(map[string]any); ok {
		delete(m, "creationTimestamp")
	}
	return yaml.Marshal(u)
}
