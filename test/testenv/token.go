package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// tokenUser is the administrator that TokenKubeconfig's bearer token authenticates.
const tokenUser = "test-admin-token"

// tokenFile writes a static token file naming an administrator, for the kube-apiserver's
// --token-auth-file, and returns its path and the token.
func tokenFile() (path, token string, err error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	token = hex.EncodeToString(raw)
	dir, err := os.MkdirTemp("", "checkpoint-quota-tokens-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "tokens.csv")
	line := fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", token, tokenUser, tokenUser)
	return path, token, os.WriteFile(path, []byte(line), 0o600)
}

// withTokenAuth has the kube-apiserver of te accept the token of a static token file.
func withTokenAuth(te *envtest.Environment) (token, file string, err error) {
	file, token, err = tokenFile()
	if err != nil {
		return "", "", err
	}
	te.ControlPlane.GetAPIServer().Configure().Set("token-auth-file", file)
	return token, file, nil
}

// TokenKubeconfig writes a kubeconfig that authenticates as an administrator with a bearer
// token (Options.TokenAuth), as a pod's ServiceAccount token does, and returns its path.
// The kube-apiserver verifies a client certificate's signature on every request, but
// looks a token up in a map (a pod's bound token: in a cache, after its first request), so
// a process's requests cost the apiserver less through this kubeconfig than through
// Kubeconfig, as they do in a cluster.
func (e *Env) TokenKubeconfig() (string, error) {
	if e.token == "" {
		return "", fmt.Errorf("the test bed was started without Options.TokenAuth")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bed"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos[tokenUser] = &clientcmdapi.AuthInfo{Token: e.token}
	cfg.Contexts["bed"] = &clientcmdapi.Context{Cluster: "bed", AuthInfo: tokenUser}
	cfg.CurrentContext = "bed"
	path := filepath.Join(e.dir, "kubeconfig-token")
	return path, clientcmd.WriteToFile(*cfg, path)
}
