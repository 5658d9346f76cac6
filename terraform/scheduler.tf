# Daily training run: Cloud Scheduler POSTs a PipelineJob to the Vertex AI REST
# API with an OAuth token of the scheduler's service account; Vertex runs it as
# the pipelines SA inside our VPC peering (to reach MLflow). The GA provider has
# no google_vertex_ai_schedule resource (8.7), hence this job.
resource "google_cloud_scheduler_job" "training" {
  name        = "${var.name_prefix}-training"
  region      = var.region
  schedule    = var.schedule
  time_zone   = var.schedule_time_zone
  description = "Daily water-potability training pipeline"

  http_target {
    http_method = "POST"
    uri         = "https://${var.region}-aiplatform.googleapis.com/v1/projects/${var.project_id}/locations/${var.region}/pipelineJobs"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode(local.pipeline_job))

    oauth_token {
      service_account_email = google_service_account.sa["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  # The first run needs every grant it uses (no propagation wait: README.md "Smaller items").
  depends_on = [
    google_service_account_iam_member.pipelines_act_as,
    google_project_iam_member.sa,
    google_artifact_registry_repository_iam_member.sa,
  ]
}
