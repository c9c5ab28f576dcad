package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// metrics are the server's Prometheus metrics, in a registry of their own: the engine's
// Stats as gauges and counters read at each scrape, plus the HTTP side's requests by endpoint
// and status, their durations and the tokens they used.
type metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	promptTokens     prometheus.Counter
	completionTokens prometheus.Counter
}

func newMetrics(stats func() (Stats, bool)) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lighttransfer_serve_http_requests_total",
			Help: "HTTP requests answered, by endpoint and status code (499: the client went away first).",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lighttransfer_serve_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"endpoint"}),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lighttransfer_serve_prompt_tokens_total",
			Help: "Prompt tokens of the completed requests.",
		}),
		completionTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lighttransfer_serve_completion_tokens_total",
			Help: "Tokens generated for the completed requests.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.promptTokens, m.completionTokens,
		engineCollector{stats}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// tokens counts a completed request's tokens.
func (m *metrics) tokens(r model.Result) {
	m.promptTokens.Add(float64(r.PromptTokens))
	m.completionTokens.Add(float64(r.GeneratedTokens))
}

// engineCollector reports the engine's Stats, read once per scrape; nothing while loading.
type engineCollector struct{ stats func() (Stats, bool) }

var (
	descRunning   = prometheus.NewDesc("lighttransfer_serve_running_sequences", "Sequences in the engine's running batch.", nil, nil)
	descWaiting   = prometheus.NewDesc("lighttransfer_serve_waiting_requests", "Requests queued for admission.", nil, nil)
	descKV        = prometheus.NewDesc("lighttransfer_serve_kv_bytes", "KV cache bytes reserved by admitted sequences.", nil, nil)
	descBudget    = prometheus.NewDesc("lighttransfer_serve_kv_budget_bytes", "The KV budget in bytes (0: unlimited).", nil, nil)
	descDecode    = prometheus.NewDesc("lighttransfer_serve_decode_tokens_per_second", "Recent aggregate decode speed of the engine.", nil, nil)
	descTTFT      = prometheus.NewDesc("lighttransfer_serve_time_to_first_token_seconds", "Time to first token of recent requests, by quantile.", []string{"quantile"}, nil)
	descCompleted = prometheus.NewDesc("lighttransfer_serve_completed_requests_total", "Requests the engine finished.", nil, nil)
	descCanceled  = prometheus.NewDesc("lighttransfer_serve_canceled_requests_total", "Requests cancelled (client gone or shutdown).", nil, nil)
	descRejected  = prometheus.NewDesc("lighttransfer_serve_rejected_requests_total", "Requests refused (queue full, too large, closed).", nil, nil)
)

func (engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descWaiting, descKV, descBudget, descDecode, descTTFT,
		descCompleted, descCanceled, descRejected} {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.stats()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descRunning, float64(st.Running))
	gauge(descWaiting, float64(st.Waiting))
	gauge(descKV, float64(st.KVBytes))
	gauge(descBudget, float64(st.KVBudget))
	gauge(descDecode, st.DecodeTokensPerSecond)
	gauge(descTTFT, st.TimeToFirstTokenP50.Seconds(), "0.5")
	gauge(descTTFT, st.TimeToFirstTokenP99.Seconds(), "0.99")
	counter(descCompleted, st.Completed)
	counter(descCanceled, st.Canceled)
	counter(descRejected, st.Rejected)
}
