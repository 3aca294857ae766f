// Package archive reads the identity of a kubelet checkpoint archive from its tar headers and two small metadata files, without extracting it.
package archive
