package main

import (
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/cmd/internal/logging/logtest"
)

// The binary logs JSON unless --zap-devel is given (it fails to find its cluster here).
func TestProductionLoggingByDefault(t *testing.T) {
	logtest.ProductionByDefault(t, ".")
}
