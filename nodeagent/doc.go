// Package nodeagent publishes every checkpoint archive on a node as a Checkpoint object and removes an archive when its object is deleted.
package nodeagent
