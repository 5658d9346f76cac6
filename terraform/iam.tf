# One service account per role; no basic roles. Project-wide grants are only
# those Google offers no narrower resource for (Cloud SQL connect, log/metric
# writing) plus two one-permission custom roles; everything else is granted on
# the resource (bucket, repository, secret, service account, Cloud Run job).
# terraform/tests/security.tftest.hcl asserts the exact set of every account.
locals {
  service_accounts = {
    pipelines       = "Vertex AI training pipeline"
    mlflow          = "MLflow tracking server VM"
    predict         = "Inference function (predict)"
    samples         = "Samples function (add_sample)"
    status          = "Public status function (status)"
    scheduler       = "Cloud Scheduler: starts the daily pipeline run"
    functions-build = "Cloud Build for the functions' source"
    image-build     = "Cloud Build: the project image (make gcp-deploy)"
    migrator        = "Cloud Run jobs: database migrations and the inference log's maintenance"
  }

  # Custom roles: exactly the permission a caller uses, where the predefined role
  # would be aiplatform.user (hundreds of permissions, project-wide). Vertex AI
  # endpoints have no resource-level IAM in the GA provider 8.7.
  custom_roles = {
    endpoint_predictor = {
      title       = "potability: online prediction"
      description = "Call predict on Vertex AI endpoints (the predict function)."
      permissions = ["aiplatform.endpoints.predict"]
    }
    pipeline_starter = {
      title       = "potability: start pipeline runs"
      description = "Create Vertex AI pipeline jobs (the daily schedule)."
      # metadataStores.get: creating a pipeline job reads the project's ML Metadata
      # store (vertex-ai/docs/tabular-data/tabular-workflows/service-accounts).
      permissions = ["aiplatform.metadataStores.get", "aiplatform.pipelineJobs.create"]
    }
  }

  # "custom:<key>" names a role of local.custom_roles.
  project_roles = {
    # The pipeline orchestrates Vertex AI itself (pipeline tasks, ML metadata, model
    # upload, endpoint deploy/undeploy, operations): aiplatform.user, see README.md.
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
    predict         = ["custom:endpoint_predictor", "roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    samples         = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    status          = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    migrator        = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    scheduler       = ["custom:pipeline_starter"]
    functions-build = ["roles/logging.logWriter"]
    # Cloud Build as its own account, not the project default (on projects created since
    # mid-2024 the Compute Engine default account, often without roles): build logs to
    # Cloud Logging only (cloudbuild.yaml), hence no logs bucket (Google: build/docs/
    # securing-builds/configure-user-specified-service-accounts).
    image-build = ["roles/logging.logWriter"]
  }

  project_bindings = merge([
    for sa, roles in local.project_roles : { for r in roles : "${sa}/${r}" => { sa = sa, role = r } }
  ]...)

  # Whole-bucket grants on buckets that hold one kind of data each (storage.tf).
  bucket_grants = {
    "pipeline_root/pipelines" = { bucket = "pipeline_root", sa = "pipelines", role = "roles/storage.objectUser" }
    "mlflow/pipelines"        = { bucket = "mlflow", sa = "pipelines", role = "roles/storage.objectUser" }
    "mlflow/mlflow"           = { bucket = "mlflow", sa = "mlflow", role = "roles/storage.objectUser" }
    # Google's build-account page for functions (run/docs/configuring/services/
    # build-service-account) names Storage Object Admin on the source bucket, not Viewer.
    "main/functions-build" = { bucket = "main", sa = "functions-build", role = "roles/storage.objectAdmin" }
    # The image build reads the source `make gcp-deploy` stages under gs://<main>/cloudbuild/.
    "main/image-build" = { bucket = "main", sa = "image-build", role = "roles/storage.objectViewer" }
    # The maintenance job (maintenance.tf) writes the archive create-only and reads it back
    # to verify: objectCreator cannot replace or delete an object, so no run can overwrite
    # a day already archived.
    "archive/migrator/create" = { bucket = "archive", sa = "migrator", role = "roles/storage.objectCreator" }
    "archive/migrator/read"   = { bucket = "archive", sa = "migrator", role = "roles/storage.objectViewer" }
  }

  # Repository-level grants (registry.tf).
  repository_grants = {
    "images/pipelines"          = { repository = "images", sa = "pipelines", role = "roles/artifactregistry.reader" }
    "pipelines/scheduler"       = { repository = "pipelines", sa = "scheduler", role = "roles/artifactregistry.reader" }
    "functions/functions-build" = { repository = "functions", sa = "functions-build", role = "roles/artifactregistry.writer" }
    "images/image-build"        = { repository = "images", sa = "image-build", role = "roles/artifactregistry.writer" }
  }
  repositories = {
    images    = google_artifact_registry_repository.images
    pipelines = google_artifact_registry_repository.pipelines
    functions = google_artifact_registry_repository.functions
  }
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "${var.name_prefix}: ${each.value}"
  project      = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "roles" {
  for_each = local.custom_roles

  # role_id allows letters, digits, underscores and dots only.
  role_id     = "${replace(var.name_prefix, "-", "_")}_${each.key}"
  title       = each.value.title
  description = each.value.description
  permissions = each.value.permissions
  stage       = "GA"
}

resource "google_project_iam_member" "sa" {
  for_each = local.project_bindings

  project = var.project_id
  role    = startswith(each.value.role, "custom:") ? google_project_iam_custom_role.roles[trimprefix(each.value.role, "custom:")].name : each.value.role
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

resource "google_storage_bucket_iam_member" "sa" {
  for_each = local.bucket_grants

  bucket = google_storage_bucket.buckets[each.value.bucket].name
  role   = each.value.role
  member = google_service_account.sa[each.value.sa].member
}

resource "google_artifact_registry_repository_iam_member" "sa" {
  for_each = local.repository_grants

  project    = var.project_id
  location   = local.repositories[each.value.repository].location
  repository = local.repositories[each.value.repository].name
  role       = each.value.role
  member     = google_service_account.sa[each.value.sa].member
}
