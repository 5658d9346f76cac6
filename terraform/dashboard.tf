# The operators' dashboard (issue 33, docs/alerts.md "Dashboard"): one page with predict's and
# add_sample's traffic, latency and errors, the model endpoint's latency, the pipeline's runs
# and what came of them, and live precision and drift over time, from the log-based metrics
# the alert policies already use (monitoring.tf). Values, not just alerts: an operator sees a
# slope before it crosses a threshold.
#
# Metrics (Google's lists: cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-run and
# cloud.google.com/monitoring/api/metrics_gcp_a_b#gcp-aiplatform):
#   - the functions are Cloud Functions gen2, i.e. Cloud Run services of the function's name:
#     run.googleapis.com/request_count (DELTA, label response_code_class 2xx/3xx/4xx/5xx) and
#     run.googleapis.com/request_latencies (DELTA distribution, ms) on cloud_run_revision;
#   - the endpoint: aiplatform.googleapis.com/prediction/online/prediction_latencies
#     (distribution, ms) on aiplatform.googleapis.com/Endpoint, label endpoint_id;
#   - pipeline runs: aiplatform.googleapis.com/pipelinejob/duration on
#     aiplatform.googleapis.com/PipelineJob, and the outcome events of our own code and of
#     Vertex AI and Cloud Scheduler (monitoring.tf's log-based metrics);
#   - live precision and drift: the live_precision_flagged, feature_drift and qc_failed events'
#     log-based metrics, per model version. The values themselves (precision with its interval
#     per model version, PSI per feature per day) are on the status page, linked from the text
#     tile: they come from the database, which Cloud Monitoring does not read.
# The JSON is the monitoring v1 Dashboard resource; tests/terraform/test_dashboard.py renders it
# and checks every field name and enum value against Google's discovery document.
locals {
  dashboard_functions = {
    predict = "predict"
    samples = "add_sample"
  }

  run_filter = {
    for k, _ in local.dashboard_functions : k =>
    "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.fn[k].name}\""
  }

  log_metric_filter = merge(
    { for k, m in google_logging_metric.alert : k => "metric.type=\"logging.googleapis.com/user/${m.name}\"" },
    {
      vertex_pipeline_job_failed = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.pipeline_job_failures.name}\""
      scheduler_job_failed       = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_failures.name}\""
    },
  )

  percentiles = ["50", "95", "99"]

  # One chart per function: requests per second by response class.
  traffic_tiles = [
    for i, k in keys(local.dashboard_functions) : {
      xPos = i * 24, yPos = 8, width = 24, height = 16
      widget = {
        title = "${local.dashboard_functions[k]}: requests/s by response class"
        xyChart = {
          dataSets = [{
            plotType       = "STACKED_AREA"
            legendTemplate = "$${metric.labels.response_code_class}"
            timeSeriesQuery = {
              timeSeriesFilter = {
                filter = "${local.run_filter[k]} AND metric.type=\"run.googleapis.com/request_count\""
                aggregation = {
                  alignmentPeriod    = "60s"
                  perSeriesAligner   = "ALIGN_RATE"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = ["metric.label.response_code_class"]
                }
              }
            }
          }]
          yAxis = { label = "requests/s", scale = "LINEAR" }
        }
      }
    }
  ]

  latency_tiles = [
    for i, k in keys(local.dashboard_functions) : {
      xPos = i * 24, yPos = 24, width = 24, height = 16
      widget = {
        title = "${local.dashboard_functions[k]}: latency p50 / p95 / p99 (ms)"
        xyChart = {
          dataSets = [
            for p in local.percentiles : {
              plotType       = "LINE"
              legendTemplate = "p${p}"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter = "${local.run_filter[k]} AND metric.type=\"run.googleapis.com/request_latencies\""
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = "ALIGN_DELTA"
                    crossSeriesReducer = "REDUCE_PERCENTILE_${p}"
                  }
                }
              }
            }
          ]
          yAxis = { label = "ms", scale = "LINEAR" }
        }
      }
    }
  ]

  # Client errors (4xx: refused input, unknown sensor, bad token) apart from server errors
  # (5xx: the database or the endpoint down - sensors retry), and the share of 5xx.
  error_tiles = [
    for i, k in keys(local.dashboard_functions) : {
      xPos = i * 24, yPos = 40, width = 24, height = 16
      widget = {
        title = "${local.dashboard_functions[k]}: errors/min by class (4xx client, 5xx server)"
        xyChart = {
          dataSets = [{
            plotType       = "STACKED_BAR"
            legendTemplate = "$${metric.labels.response_code_class}"
            timeSeriesQuery = {
              timeSeriesFilter = {
                filter = "${local.run_filter[k]} AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=one_of(\"4xx\", \"5xx\")"
                aggregation = {
                  alignmentPeriod    = "60s"
                  perSeriesAligner   = "ALIGN_DELTA"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = ["metric.label.response_code_class"]
                }
              }
            }
          }]
          yAxis = { label = "errors per minute", scale = "LINEAR" }
        }
      }
    }
  ]

  event_chart = {
    for name, spec in {
      pipeline = {
        title  = "Pipeline runs: outcomes per day"
        events = ["model_promoted", "model_candidate", "pipeline_run_failed", "vertex_pipeline_job_failed", "scheduler_job_failed", "pipeline_stale"]
      }
      quality = {
        title  = "Live precision and drift: events per day, by model version"
        events = ["live_precision_flagged", "feature_drift", "qc_failed"]
      }
      } : name => {
      title = spec.title
      xyChart = {
        dataSets = [
          for e in spec.events : {
            plotType       = "STACKED_BAR"
            legendTemplate = name == "quality" ? "${e} $${metric.labels.model_version}" : e
            timeSeriesQuery = {
              timeSeriesFilter = {
                filter = local.log_metric_filter[e]
                aggregation = {
                  alignmentPeriod    = "86400s"
                  perSeriesAligner   = "ALIGN_SUM"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = name == "quality" ? ["metric.label.model_version"] : []
                }
              }
            }
          }
        ]
        yAxis = { label = "events", scale = "LINEAR" }
      }
    }
  }

  dashboard = {
    displayName = "${var.name_prefix}: operations"
    mosaicLayout = {
      columns = 48
      tiles = concat(
        [{
          xPos = 0, yPos = 0, width = 48, height = 8
          widget = {
            title = "potability"
            text = {
              format  = "MARKDOWN"
              content = "predict and add_sample (Cloud Run metrics of the functions), the model endpoint, the daily pipeline, live precision and drift. The precision and drift values, per model version and per feature, are on the [status page](${local.status_page_url}); what to do about an alert: [runbook](${var.alert_runbook_url})."
            }
          }
        }],
        local.traffic_tiles,
        local.latency_tiles,
        local.error_tiles,
        [
          {
            xPos = 0, yPos = 56, width = 24, height = 16
            widget = {
              title = "Model endpoint: prediction latency p50 / p95 / p99 (ms)"
              xyChart = {
                dataSets = [
                  for p in local.percentiles : {
                    plotType       = "LINE"
                    legendTemplate = "p${p}"
                    timeSeriesQuery = {
                      timeSeriesFilter = {
                        filter = "resource.type=\"aiplatform.googleapis.com/Endpoint\" AND resource.labels.endpoint_id=\"${google_vertex_ai_endpoint.main.name}\" AND metric.type=\"aiplatform.googleapis.com/prediction/online/prediction_latencies\""
                        aggregation = {
                          alignmentPeriod    = "60s"
                          perSeriesAligner   = "ALIGN_DELTA"
                          crossSeriesReducer = "REDUCE_PERCENTILE_${p}"
                        }
                      }
                    }
                  }
                ]
                yAxis = { label = "ms", scale = "LINEAR" }
              }
            }
          },
          {
            xPos = 24, yPos = 56, width = 24, height = 16
            widget = {
              title = "Pipeline runs: duration of each Vertex AI pipeline job"
              xyChart = {
                dataSets = [{
                  plotType       = "LINE"
                  legendTemplate = "$${resource.labels.pipeline_job_id}"
                  timeSeriesQuery = {
                    timeSeriesFilter = {
                      filter = "resource.type=\"aiplatform.googleapis.com/PipelineJob\" AND metric.type=\"aiplatform.googleapis.com/pipelinejob/duration\""
                      aggregation = {
                        alignmentPeriod  = "3600s"
                        perSeriesAligner = "ALIGN_MAX"
                      }
                    }
                  }
                }]
                yAxis = { label = "seconds", scale = "LINEAR" }
              }
            }
          },
          { xPos = 0, yPos = 72, width = 24, height = 16, widget = local.event_chart["pipeline"] },
          { xPos = 24, yPos = 72, width = 24, height = 16, widget = local.event_chart["quality"] },
        ],
      )
    }
  }
}

resource "google_monitoring_dashboard" "operations" {
  project        = var.project_id
  dashboard_json = jsonencode(local.dashboard)

  depends_on = [google_project_service.apis]
}
