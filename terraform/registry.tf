# Docker repository of the project image (pipeline components and serving).
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Holds only the project's own image (no secrets, no data); Google-managed encryption, no customer key ring is provisioned.
  repository_id = var.name_prefix
  location      = var.region
  format        = "DOCKER"
  description   = "Project image used by the pipeline components and the Vertex AI serving container."

  docker_config {
    immutable_tags = false
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = 20
    }
  }

  depends_on = [google_project_service.apis]
}
