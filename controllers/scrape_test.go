package controllers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/checkpoint-quota/checkpoint-quota/controllers"
)

// scrapeMetrics reads the metrics that this process's manager serves, as a scrape of its
// /metrics (controllers.MetricsHandler over controller-runtime's registry) finds them.
func scrapeMetrics() (map[string]*dto.MetricFamily, error) {
	rec := httptest.NewRecorder()
	controllers.MetricsHandler(metrics.Registry).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %d: %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(rec.Body)
}
