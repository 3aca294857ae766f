package nodeagent_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// orphansOf lists the Checkpoints that stand for archives of the gone namespace ns.
func orphansOf(ns string) func(Gomega) []cqv1.Checkpoint {
	return func(g Gomega) []cqv1.Checkpoint {
		var list cqv1.CheckpointList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(orphanNamespace), client.MatchingLabels{cqv1.LabelOrphanOf: ns})).To(Succeed())
		return list.Items
	}
}

// deleteNamespace deletes ns with kubectl, as a user does, and waits until the real
// namespace controller has finished: the namespace is gone.
func deleteNamespace(ns string) time.Duration {
	GinkgoHelper()
	start := time.Now()
	out, stderr, err := env.Kubectl("", "delete", "namespace", ns, "--wait=true", "--timeout=60s")
	Expect(err).NotTo(HaveOccurred(), out+stderr)
	Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}))
	}).Should(BeTrue())
	return time.Since(start)
}

// writeArchives writes one archive per pod of ns into dir and returns their paths.
func writeArchives(dir, ns string, pods ...string) []string {
	GinkgoHelper()
	var paths []string
	for _, pod := range pods {
		paths = append(paths, testarchive.New(ns, pod, "redis").MustWrite(dir))
	}
	return paths
}

func allExist(paths []string) func() []string {
	return func() []string {
		var missing []string
		for _, p := range paths {
			if !exists(p) {
				missing = append(missing, p)
			}
		}
		return missing
	}
}

var _ = Describe("Namespace deletion and uninstalling", func() {
	It("keeps every archive of a deleted namespace on both nodes, promptly, and shows them as orphans", func() {
		ns, err := env.CreateNamespace(ctx, "life")
		Expect(err).NotTo(HaveOccurred())
		nodeA, dirA := newNode()
		nodeB, dirB := newNode()
		startAgent(nodeA, settleTime, dirA)
		startAgent(nodeB, settleTime, dirB)
		paths := append(writeArchives(dirA, ns, "web-0", "web-1"), writeArchives(dirB, ns, "web-2")...)
		Eventually(func(g Gomega) int { return len(checkpointsOf(nodeA)(g)) + len(checkpointsOf(nodeB)(g)) }).Should(Equal(3))

		took := deleteNamespace(ns)
		Expect(took).To(BeNumerically("<", 20*time.Second), "the namespace's deletion waited on something")
		Consistently(allExist(paths), 2*time.Second).Should(BeEmpty())
		Eventually(func(g Gomega) []string { return fileNames(orphansOf(ns)(g)) }).Should(ConsistOf(
			filepath.Base(paths[0]), filepath.Base(paths[1]), filepath.Base(paths[2])))

		out, stderr, err := env.Kubectl("", "get", "checkpoints", "-A", "-l", cqv1.LabelOrphanOf+"="+ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("ORPHAN-OF"))
		Expect(out).To(ContainSubstring(orphanNamespace))
		Expect(out).To(ContainSubstring(ns))

		// An orphan is still managed: a person deleting it removes its file, and only its file.
		orphan := orphansOf(ns)(Default)[0]
		out, stderr, err = env.Kubectl("", "delete", "checkpoint", orphan.Name, "-n", orphanNamespace)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		removed := filepath.Join(orphan.Spec.Archive.Directory, orphan.Spec.Archive.FileName)
		Eventually(func() bool { return exists(removed) }).Should(BeFalse())
		var rest []string
		for _, p := range paths {
			if p != removed {
				rest = append(rest, p)
			}
		}
		Consistently(allExist(rest), time.Second).Should(BeEmpty())
		Expect(orphansOf(ns)(Default)).To(HaveLen(2))
	})

	It("deletes a namespace promptly that holds pinned Checkpoints, and keeps their archives pinned, as orphans", func() {
		ns, err := env.CreateNamespace(ctx, "pinned")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		startAgent(node, settleTime, dir)
		bySpec, byMarker := testarchive.New(ns, "cache-0", "redis"), testarchive.New(ns, "cache-1", "redis")
		specPath, markerPath := bySpec.MustWrite(dir), byMarker.MustWrite(dir)
		Expect(os.WriteFile(markerPath+".keep", nil, 0o600)).To(Succeed())
		obj := publishedAs(node, bySpec)
		out, stderr, err := env.Kubectl("", "patch", "checkpoint", obj.Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"pinned":true}}`)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func() bool { return publishedAs(node, bySpec).Status.Pinned }).Should(BeTrue())
		Eventually(func() bool { return publishedAs(node, byMarker).Status.KeepMarker }).Should(BeTrue())

		Expect(deleteNamespace(ns)).To(BeNumerically("<", 20*time.Second), "the namespace's deletion waited on the pins")
		Consistently(allExist([]string{specPath, markerPath}), 2*time.Second).Should(BeEmpty())
		Eventually(func(g Gomega) []bool {
			var pinned []bool
			for _, o := range orphansOf(ns)(g) {
				pinned = append(pinned, o.Status.Pinned)
			}
			return pinned
		}).Should(Equal([]bool{true, true}))
	})

	It("deletes a namespace promptly while its node's agent is stopped, and keeps its archives for when it is back", func() {
		ns, err := env.CreateNamespace(ctx, "down")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		a := startAgent(node, settleTime, dir)
		paths := writeArchives(dir, ns, "job-0", "job-1")
		Eventually(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }).Should(HaveLen(2))
		a.stop()

		Expect(deleteNamespace(ns)).To(BeNumerically("<", 20*time.Second))
		Expect(allExist(paths)()).To(BeEmpty())

		startAgent(node, settleTime, dir)
		Eventually(func(g Gomega) []cqv1.Checkpoint { return orphansOf(ns)(g) }).Should(HaveLen(2))
		Consistently(allExist(paths), 2*time.Second).Should(BeEmpty())
	})

	It("removes the file of a Checkpoint deleted while the agent was down once it starts, and only that one", func() {
		ns, err := env.CreateNamespace(ctx, "offline")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		a := startAgent(node, settleTime, dir)
		gone, kept := testarchive.New(ns, "db-0", "redis"), testarchive.New(ns, "db-1", "redis")
		paths := []string{gone.MustWrite(dir), kept.MustWrite(dir)}
		target := publishedAs(node, gone)
		publishedAs(node, kept)
		awaitRecorded(node, target.UID)
		a.stop()
		out, stderr, err := env.Kubectl("", "delete", "checkpoint", target.Name, "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Expect(paths[0]).To(BeAnExistingFile())

		startAgent(node, settleTime, dir)
		Eventually(func() bool { return exists(paths[0]) }).Should(BeFalse())
		Consistently(allExist(paths[1:]), time.Second).Should(BeEmpty())
		Expect(checkpointsOf(node)(Default)).To(HaveLen(1))
	})

	It("keeps the file when its record is older than the Checkpoint that stands for it, as after a crash of the node", func() {
		ns, err := env.CreateNamespace(ctx, "fresh")
		Expect(err).NotTo(HaveOccurred())
		elsewhere, err := env.CreateNamespace(ctx, "before")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		a := startAgent(node, settleTime, dir)
		arch := testarchive.New(ns, "db-0", "redis")
		path := arch.MustWrite(dir)
		live := publishedAs(node, arch)
		// The agent writes the record right after the create that publishedAs saw.
		records := filepath.Join(stateRoot, node, "records.log")
		Eventually(func() string {
			data, _ := os.ReadFile(records)
			return string(data)
		}).Should(ContainSubstring(string(live.UID)))
		a.stop()

		By("putting back an older record: a Checkpoint in another namespace, since deleted, with every witness unchanged")
		data, err := os.ReadFile(records)
		Expect(err).NotTo(HaveOccurred())
		var line map[string]map[string]any
		Expect(json.Unmarshal(bytes.TrimSpace(data), &line)).To(Succeed(), "one record, one line")
		var nsObj corev1.Namespace
		Expect(env.Client.Get(ctx, client.ObjectKey{Name: elsewhere}, &nsObj)).To(Succeed())
		rec := line["put"]
		rec["namespace"], rec["name"], rec["uid"], rec["namespaceUID"] = elsewhere, live.Name, "deleted-long-ago", string(nsObj.UID)
		data, err = json.Marshal(line)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(records, append(data, '\n'), 0o600)).To(Succeed())

		startAgent(node, settleTime, dir)
		Eventually(func() string {
			data, _ := os.ReadFile(records)
			return string(data)
		}).Should(ContainSubstring(string(live.UID)), "the record is replaced by the live Checkpoint's")
		Expect(path).To(BeAnExistingFile())
		Expect(checkpointsOf(node)(Default)).To(ConsistOf(HaveField("UID", live.UID)))
	})

	It("keeps every archive when the CRDs are deleted while the agents run, and publishes them again on reinstall", func() {
		ns, err := env.CreateNamespace(ctx, "uninstall")
		Expect(err).NotTo(HaveOccurred())
		nodeA, dirA := newNode()
		nodeB, dirB := newNode()
		startAgent(nodeA, settleTime, dirA)
		startAgent(nodeB, settleTime, dirB)
		paths := append(writeArchives(dirA, ns, "app-0", "app-1"), writeArchives(dirB, ns, "app-2", "app-3")...)
		Eventually(func(g Gomega) int { return len(checkpointsOf(nodeA)(g)) + len(checkpointsOf(nodeB)(g)) }).Should(Equal(4))

		crds := filepath.Join(testenv.RepoRoot(), "config", "crd")
		out, stderr, err := env.Kubectl("", "delete", "-k", crds, "--wait=true", "--timeout=60s")
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Consistently(allExist(paths), 3*time.Second).Should(BeEmpty())

		out, stderr, err = env.Kubectl("", "apply", "--server-side", "-k", crds)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func(g Gomega) int {
			return len(checkpointsOf(nodeA)(g)) + len(checkpointsOf(nodeB)(g))
		}, 60*time.Second).Should(Equal(4))
		Consistently(allExist(paths), 2*time.Second).Should(BeEmpty())
		// The admission policy the other specs rely on matches the new CRD too.
		Expect(env.Client.List(ctx, &cqv1.CheckpointList{}, client.InNamespace(ns))).To(Succeed())
	})
})
