# Who is told: Cloud Monitoring alerting on the events the code raises (potability/alerts.py).
#
# Each event is one structured log line written once per occurrence; alert_events.json is
# GENERATED from the code (`python -m potability.alerts terraform/alert_events.json`, kept in
# sync by tests/potability/test_alerts.py), so the filters below are the code's own strings.
# Per event: a log-based metric counting its lines and an alert policy on that metric. Plus the
# scheduler job's own failures and Cloud SQL down, which no code of ours can report.
# Arguments per the provider docs (hashicorp/terraform-provider-google,
# website/docs/r/logging_metric, monitoring_alert_policy, monitoring_notification_channel).

locals {
  alert_events = jsondecode(file("${path.module}/alert_events.json")).events

  alert_channel_ids = concat(
    [for c in google_monitoring_notification_channel.email : c.id],
    google_monitoring_notification_channel.webhook[*].id,
  )

  status_page_url = google_cloudfunctions2_function.fn["status"].url

  # What an alert about the service links to: where customers see it, and what to do.
  alert_links = [
    { display_name = "Status page", url = local.status_page_url },
    { display_name = "Runbook (docs/alerts.md)", url = var.alert_runbook_url },
  ]
}

# ------------------------------------------------------------ notification channels ----

resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(var.alert_emails)
  project      = var.project_id
  display_name = "${var.name_prefix} alerts: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_notification_channel" "webhook" {
  count        = var.alert_webhook_url == "" ? 0 : 1
  project      = var.project_id
  display_name = "${var.name_prefix} alerts webhook"
  type         = "webhook_tokenauth"
  labels = {
    url = var.alert_webhook_url
  }
}

# ------------------------------------------------------------------- our events ----

resource "google_logging_metric" "alert" {
  for_each    = local.alert_events
  project     = var.project_id
  name        = "${var.name_prefix}/alerts/${each.key}"
  description = each.value.title
  filter      = each.value.log_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name_prefix} alert ${each.key}"
    labels {
      key         = "model_version"
      value_type  = "STRING"
      description = "The model version the alert is about."
    }
  }

  label_extractors = {
    model_version = "EXTRACT(jsonPayload.model_version)"
  }

  depends_on = [google_project_service.apis]
}

# Policies on log-based metrics wait for `make gcp-deploy` (they exist once var.image_digest is
# set): Cloud Monitoring learns a new log-based metric minutes after Logging creates it, and a
# policy created before then is refused with 404 "Cannot find metric(s)" (a known provider
# issue). gcp-deploy polls Monitoring's metricDescriptors.get for every type in
# output.alert_metric_types before the apply that creates them (potability/gcp/deploy.py).
locals {
  log_metric_policies = var.image_digest != ""
}

resource "google_monitoring_alert_policy" "event" {
  for_each     = local.log_metric_policies ? local.alert_events : {}
  project      = var.project_id
  display_name = "${var.name_prefix}: ${each.value.title}"
  combiner     = "OR"
  severity     = each.value.severity

  conditions {
    display_name = "${each.key} raised"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.alert[each.key].name}\" AND resource.type=\"${each.value.gcp_resource}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.model_version"]
      }
      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channel_ids

  alert_strategy {
    auto_close = "${var.alert_auto_close_hours * 3600}s"
  }

  documentation {
    subject   = "[${each.value.severity}] ${var.name_prefix}: ${each.value.title}"
    mime_type = "text/markdown"
    content   = "${each.value.runbook}\n\nEvent `${each.key}`; the log entries: `${each.value.log_filter}`. Open alerts are listed at the top of the status page."
    dynamic "links" {
      for_each = local.alert_links
      content {
        display_name = links.value.display_name
        url          = links.value.url
      }
    }
  }
}

# ------------------------------------------------ the scheduler job's own failures ----

resource "google_logging_metric" "scheduler_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}/alerts/scheduler_job_failed"
  description = "Failed attempts of the daily training scheduler job."
  filter      = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${google_cloud_scheduler_job.training.name}\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "scheduler_failed" {
  count        = local.log_metric_policies ? 1 : 0
  project      = var.project_id
  display_name = "${var.name_prefix}: the training scheduler job failed"
  combiner     = "OR"
  severity     = "ERROR"

  conditions {
    display_name = "scheduler attempt failed"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_failures.name}\" AND resource.type=\"cloud_scheduler_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  notification_channels = local.alert_channel_ids

  alert_strategy {
    auto_close = "${var.alert_auto_close_hours * 3600}s"
  }

  documentation {
    subject   = "[ERROR] ${var.name_prefix}: the training scheduler job failed"
    mime_type = "text/markdown"
    content   = "Cloud Scheduler could not start the daily pipeline run (the POST to Vertex AI pipelineJobs failed): no training run today. Open the job `${google_cloud_scheduler_job.training.name}` in Cloud Scheduler, read the attempt's error (permission of the scheduler service account, a missing compiled pipeline in the bucket, quota), fix it and use \"Force run\"."
    links {
      display_name = "Runbook (docs/alerts.md)"
      url          = var.alert_runbook_url
    }
  }
}

# ------------------------------------------------------------------ Cloud SQL down ----

resource "google_monitoring_alert_policy" "cloud_sql_down" {
  project      = var.project_id
  display_name = "${var.name_prefix}: Cloud SQL is down"
  combiner     = "OR"
  severity     = "CRITICAL"

  conditions {
    display_name = "database/up below 1"
    condition_threshold {
      filter          = "metric.type=\"cloudsql.googleapis.com/database/up\" AND resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${var.project_id}:${google_sql_database_instance.main.name}\""
      comparison      = "COMPARISON_LT"
      threshold_value = 1
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MIN"
      }
    }
  }

  conditions {
    display_name = "database/up not reported"
    condition_absent {
      filter   = "metric.type=\"cloudsql.googleapis.com/database/up\" AND resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${var.project_id}:${google_sql_database_instance.main.name}\""
      duration = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MIN"
      }
    }
  }

  notification_channels = local.alert_channel_ids

  alert_strategy {
    auto_close = "${var.alert_auto_close_hours * 3600}s"
  }

  documentation {
    subject   = "[CRITICAL] ${var.name_prefix}: Cloud SQL is down"
    mime_type = "text/markdown"
    content   = "The Cloud SQL instance `${google_sql_database_instance.main.name}` is not up: predict and add_sample answer 503 (sensors and the regulator retry; nothing is lost while they do), the status page is unavailable and the pipeline cannot export. Check the instance in the Cloud SQL console (maintenance, storage full, a failover), its logs, and restart it if needed."
    dynamic "links" {
      for_each = local.alert_links
      content {
        display_name = links.value.display_name
        url          = links.value.url
      }
    }
  }
}

# -------------------------------------------- Vertex AI's own pipeline job failures ----
# A run that fails before our code runs (the network attachment, the image pull, a quota)
# logs nothing of ours, so no `pipeline_run_failed`: Vertex AI's own pipeline job events do
# (Google: vertex-ai/docs/pipelines/logging - log aiplatform.googleapis.com/pipeline_job_events
# on the "Vertex Pipelines Job" resource, aiplatform.googleapis.com/PipelineJob).
resource "google_logging_metric" "pipeline_job_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}/alerts/vertex_pipeline_job_failed"
  description = "Error events of Vertex AI pipeline jobs (including failures before our code runs)."
  filter      = "resource.type=\"aiplatform.googleapis.com/PipelineJob\" AND logName=\"projects/${var.project_id}/logs/aiplatform.googleapis.com%2Fpipeline_job_events\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "pipeline_job_failed" {
  count        = local.log_metric_policies ? 1 : 0
  project      = var.project_id
  display_name = "${var.name_prefix}: a Vertex AI pipeline job failed"
  combiner     = "OR"
  severity     = "ERROR"

  conditions {
    display_name = "pipeline job error event"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.pipeline_job_failures.name}\" AND resource.type=\"aiplatform.googleapis.com/PipelineJob\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  notification_channels = local.alert_channel_ids

  alert_strategy {
    auto_close = "${var.alert_auto_close_hours * 3600}s"
  }

  documentation {
    subject   = "[ERROR] ${var.name_prefix}: a Vertex AI pipeline job failed"
    mime_type = "text/markdown"
    content   = "Vertex AI reported a failed pipeline job: no model trained or deployed by that run. If `pipeline_run_failed` did not fire too, it failed before our code ran - read the job's error in Vertex AI Pipelines (network attachment or service agent permissions, image pull, quota), fix it and start a run again."
    dynamic "links" {
      for_each = local.alert_links
      content {
        display_name = links.value.display_name
        url          = links.value.url
      }
    }
  }
}
