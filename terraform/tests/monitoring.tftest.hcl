# Alerting (monitoring.tf): every event the code defines (alert_events.json, generated from
# potability/alerts.py) has a log-based metric on exactly the code's filter, an alert policy on
# that metric with documentation and links, and notification channels; plus the scheduler
# job's failures and Cloud SQL down.

mock_provider "google" {}
mock_provider "archive" {}
mock_provider "time" {}

variables {
  project_id      = "test-project"
  regulator_group = "regulator@example.com"
  alert_emails    = ["ops@example.com", "regulator@example.com"]
  # make gcp-deploy's apply: the policies on log-based metrics exist from then on
  image_digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

run "every_event_has_a_metric_on_the_code_filter_and_a_policy_with_channels" {
  command = apply

  assert {
    condition     = length(local.alert_events) == 13
    error_message = "The thirteen events of potability/alerts.py are read from alert_events.json."
  }
  assert {
    condition     = alltrue([for k, e in local.alert_events : google_logging_metric.alert[k].filter == e.log_filter])
    error_message = "Each log-based metric uses the event's filter exactly as the code builds it."
  }
  assert {
    condition     = alltrue([for k, e in local.alert_events : strcontains(e.log_filter, "jsonPayload.alert=\"${k}\"")])
    error_message = "Each filter matches the event's stable `alert` field."
  }
  assert {
    condition     = sort(keys(google_monitoring_alert_policy.event)) == sort(keys(local.alert_events))
    error_message = "Every event has an alert policy."
  }
  assert {
    condition = alltrue([for k, p in google_monitoring_alert_policy.event :
    strcontains(p.conditions[0].condition_threshold[0].filter, "logging.googleapis.com/user/${google_logging_metric.alert[k].name}")])
    error_message = "Each policy watches its own event's metric."
  }
  assert {
    condition     = alltrue([for k, p in google_monitoring_alert_policy.event : length(p.notification_channels) == 2])
    error_message = "Every event policy notifies every channel (here the two e-mails)."
  }
  assert {
    condition     = alltrue([for k, p in google_monitoring_alert_policy.event : p.severity == local.alert_events[k].severity])
    error_message = "Policy severity is the event's severity."
  }
  assert {
    condition = alltrue([for k, p in google_monitoring_alert_policy.event :
    p.documentation[0].mime_type == "text/markdown" && strcontains(p.documentation[0].content, local.alert_events[k].runbook) && length(p.documentation[0].links) == 2])
    error_message = "Each policy documents what to do and links the status page and the runbook."
  }
  assert {
    condition     = sort([for c in google_monitoring_notification_channel.email : c.labels.email_address]) == sort(["ops@example.com", "regulator@example.com"])
    error_message = "One e-mail channel per address."
  }
  assert {
    condition     = length(google_monitoring_notification_channel.webhook) == 0
    error_message = "No webhook channel unless a URL is given."
  }
}

run "the_scheduler_and_cloud_sql_have_their_own_policies" {
  command = apply

  assert {
    condition     = strcontains(google_logging_metric.scheduler_failures.filter, "resource.type=\"cloud_scheduler_job\"") && strcontains(google_logging_metric.scheduler_failures.filter, google_cloud_scheduler_job.training.name)
    error_message = "The scheduler metric counts the training job's failed attempts."
  }
  assert {
    condition     = length(google_monitoring_alert_policy.scheduler_failed[0].notification_channels) == 2 && length(google_monitoring_alert_policy.cloud_sql_down.notification_channels) == 2
    error_message = "Both policies notify every channel."
  }
  assert {
    condition     = strcontains(google_monitoring_alert_policy.cloud_sql_down.conditions[0].condition_threshold[0].filter, "cloudsql.googleapis.com/database/up") && length(google_monitoring_alert_policy.cloud_sql_down.conditions) == 2
    error_message = "Cloud SQL down: database/up below 1, or not reported at all."
  }
  assert {
    condition     = google_monitoring_alert_policy.cloud_sql_down.documentation[0].content != "" && google_monitoring_alert_policy.scheduler_failed[0].documentation[0].content != ""
    error_message = "Both policies say what to do."
  }
}

run "an_optional_webhook_is_one_more_channel_for_every_policy" {
  command = apply

  variables {
    alert_webhook_url = "https://hooks.example.com/potability"
  }

  assert {
    condition     = google_monitoring_notification_channel.webhook[0].type == "webhook_tokenauth" && google_monitoring_notification_channel.webhook[0].labels.url == "https://hooks.example.com/potability"
    error_message = "The webhook is a webhook_tokenauth channel on the given URL."
  }
  assert {
    condition     = alltrue([for k, p in google_monitoring_alert_policy.event : contains(p.notification_channels, google_monitoring_notification_channel.webhook[0].id)])
    error_message = "Every event policy also notifies the webhook."
  }
}

run "no_recipient_is_refused" {
  command = plan

  variables {
    alert_emails = []
  }

  expect_failures = [var.alert_emails]
}

run "a_plain_http_webhook_is_refused" {
  command = plan

  variables {
    alert_webhook_url = "http://hooks.example.com/x"
  }

  expect_failures = [var.alert_webhook_url]
}

run "vertex_pipeline_job_failures_alert_without_our_code" {
  command = plan

  assert {
    condition     = google_logging_metric.pipeline_job_failures.filter == "resource.type=\"aiplatform.googleapis.com/PipelineJob\" AND logName=\"projects/test-project/logs/aiplatform.googleapis.com%2Fpipeline_job_events\" AND severity>=ERROR"
    error_message = "Vertex AI's own pipeline job events (vertex-ai/docs/pipelines/logging), errors only."
  }
  assert {
    condition     = strcontains(google_monitoring_alert_policy.pipeline_job_failed[0].conditions[0].condition_threshold[0].filter, "logging.googleapis.com/user/potability/alerts/vertex_pipeline_job_failed") && length(google_monitoring_alert_policy.pipeline_job_failed[0].notification_channels) == 2
    error_message = "The policy watches that metric and notifies every channel."
  }
}

run "policies_on_log_based_metrics_wait_for_gcp_deploy" {
  command = plan

  variables {
    image_digest = ""
  }

  assert {
    condition     = length(google_monitoring_alert_policy.event) == 0 && length(google_monitoring_alert_policy.scheduler_failed) == 0 && length(google_monitoring_alert_policy.pipeline_job_failed) == 0
    error_message = "No policy on a log-based metric in the apply that creates the metric (404 'Cannot find metric(s)')."
  }
  assert {
    condition     = length(google_logging_metric.alert) == 13 && length(output.alert_metric_types) == 15 && contains(output.alert_metric_types, "logging.googleapis.com/user/potability/alerts/vertex_pipeline_job_failed")
    error_message = "The metrics exist from the first apply; gcp-deploy waits for exactly their types."
  }
  assert {
    condition     = google_monitoring_alert_policy.cloud_sql_down.display_name != ""
    error_message = "Cloud SQL down watches a built-in metric: created at once."
  }
}
