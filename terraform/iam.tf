# One service account per role; no basic roles; bucket/repository/SA-scoped
# bindings wherever the service allows it.
locals {
  service_accounts = {
    pipelines       = "Vertex AI training pipeline"
    mlflow          = "MLflow tracking server VM"
    predict         = "Inference function (predict)"
    samples         = "Samples function (add_sample)"
    status          = "Public status function (status)"
    scheduler       = "Cloud Scheduler: starts the daily pipeline run"
    functions-build = "Cloud Build for the functions' source"
  }

  project_roles = {
    pipelines = [
      "roles/aiplatform.user",
      "roles/cloudsql.client",
      "roles/cloudsql.instanceUser",
      "roles/logging.logWriter",
      "roles/monitoring.metricWriter",
    ]
    mlflow = [
      "roles/cloudsql.client",
      "roles/cloudsql.instanceUser",
      "roles/logging.logWriter",
      "roles/monitoring.metricWriter",
    ]
    # Vertex AI has no endpoint-level IAM in the GA provider: predict needs aiplatform.user.
    predict         = ["roles/aiplatform.user", "roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    samples         = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    status          = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    scheduler       = ["roles/aiplatform.user"]
    functions-build = ["roles/cloudbuild.builds.builder"]
  }

  project_bindings = merge([
    for sa, roles in local.project_roles : { for r in roles : "${sa}/${r}" => { sa = sa, role = r } }
  ]...)
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "${var.name_prefix}: ${each.value}"
  project      = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "sa" {
  for_each = local.project_bindings

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.sa[each.value.sa].member
}

# Vertex AI runs the pipeline's jobs as the pipelines SA: whoever submits the run
# (the pipelines SA itself for nested jobs, the scheduler for the daily run) must
# be allowed to act as it. Scoped to that one service account.
resource "google_service_account_iam_member" "pipelines_act_as" {
  for_each = toset(["pipelines", "scheduler"])

  service_account_id = google_service_account.sa["pipelines"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.sa[each.key].member
}

# Bucket: the pipeline and MLflow read and write their prefixes; the scheduler
# only reads the compiled template; the function build reads the source zip.
resource "google_storage_bucket_iam_member" "object_admin" {
  for_each = toset(["pipelines", "mlflow"])

  bucket = google_storage_bucket.main.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.sa[each.key].member
}

resource "google_storage_bucket_iam_member" "object_viewer" {
  for_each = toset(["scheduler", "functions-build"])

  bucket = google_storage_bucket.main.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.sa[each.key].member
}

resource "google_artifact_registry_repository_iam_member" "pipelines_reader" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.sa["pipelines"].member
}
