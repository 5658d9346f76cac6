data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge(var.labels, { app = "potability", managed-by = "terraform" })

  bucket_name     = var.bucket_name != "" ? var.bucket_name : "${var.project_id}-${var.name_prefix}"
  bucket_location = var.bucket_location != "" ? var.bucket_location : upper(var.region)

  # Three buckets, one per writer, so that every grant is a whole bucket: the main
  # bucket (function source, notebook; only read by the function build), the
  # pipeline root (written by the pipelines SA) and the MLflow artifact store
  # (written by MLflow and the pipelines SA). No account can touch another's objects.
  pipeline_root_bucket    = "${local.bucket_name}-pipeline-root"
  mlflow_artifacts_bucket = "${local.bucket_name}-mlflow"
  archive_bucket          = "${local.bucket_name}-archive"

  # The schedule's templateUri: Vertex accepts only the template registry (an
  # Artifact Registry KFP repository), never gs:// (aiplatform v1 discovery doc,
  # PipelineJob.templateUri). `potability pipeline publish` (make gcp-deploy)
  # uploads the compiled pipeline as this package, tagged latest and by hash.
  pipeline_package      = "water-potability-training"
  pipeline_template_uri = "https://${var.region}-kfp.pkg.dev/${var.project_id}/${google_artifact_registry_repository.pipelines.repository_id}/${local.pipeline_package}/latest"
  pipeline_root         = "gs://${local.pipeline_root_bucket}/pipeline-root"
  mlflow_artifacts_uri  = "gs://${local.mlflow_artifacts_bucket}/mlflow-artifacts"

  # The project image by digest (immutable) once `make gcp-deploy` has pushed it;
  # until then by the mutable tag (var.image_digest, README.md).
  image_repository = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
  project_image    = var.image_digest != "" ? "${local.image_repository}/potability@${var.image_digest}" : "${local.image_repository}/potability:${var.image_tag}"
  serving_image    = local.project_image

  # Cloud SQL IAM database user of a service account: its email without ".gserviceaccount.com".
  db_user = { for k, sa in google_service_account.sa : k => trimsuffix(sa.email, ".gserviceaccount.com") }
}

resource "google_project_service" "apis" {
  for_each = toset([
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com", # the archive's external table (archive.tf)
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    # Terraform itself needs these two (every google_project_iam_member, data.google_project)
    # before it can enable anything: `make gcp-bootstrap` enables them, with iam, ahead of the
    # first apply (terraform/README.md "First apply"); listed here so they stay enabled.
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "iap.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "serviceusage.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
