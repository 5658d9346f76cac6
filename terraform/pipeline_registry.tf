# Vertex AI's template registry: an Artifact Registry repository of format KFP.
# `python -m pipelines publish` uploads the compiled pipeline here (package
# water-potability-training, tagged with its content hash and `latest`) and the
# schedule names it by URL (templateUri, main.tf). Minimal declaration by the
# Python half of issue 9; the Terraform half declares the same resource with its
# cleanup policies and the scheduler's reader grant - keep theirs when merging.
resource "google_artifact_registry_repository" "pipelines" {
  #checkov:skip=CKV_GCP_84:Holds only the compiled pipeline definition (no secrets, no data); Google-managed encryption, no customer key ring is provisioned.
  repository_id = "${var.name_prefix}-pipelines"
  location      = var.region
  format        = "KFP"
  description   = "Compiled training pipeline (Vertex AI template registry)."

  depends_on = [google_project_service.apis]
}

# The schedule's OAuth token is the scheduler SA's: Vertex downloads the template
# with it, so the scheduler reads this repository (and no other).
resource "google_artifact_registry_repository_iam_member" "scheduler_reads_pipelines" {
  project    = var.project_id
  location   = google_artifact_registry_repository.pipelines.location
  repository = google_artifact_registry_repository.pipelines.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.sa["scheduler"].member
}
