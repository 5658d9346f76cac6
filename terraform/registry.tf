# Artifact Registry: the project image (pipeline components, Vertex serving, the
# migration job), the functions' build images, and the compiled pipeline (KFP).
#
# Cleanup policies (provider docs r/artifact_registry_repository, "cleanup_policies";
# Google: artifact-registry/docs/repositories/cleanup-policy): DELETE untagged
# versions older than var.artifact_retention_days, KEEP the most recent ones in
# any case (KEEP wins over DELETE). Deployments pin the image by digest of a
# *tagged* version (`make gcp-deploy` tags each build), so a running digest is
# never an untagged one.
locals {
  artifact_retention = "${var.artifact_retention_days * 86400}s"
}

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Holds only the project's own image (no secrets, no data); Google-managed encryption, no customer key ring is provisioned.
  repository_id          = var.name_prefix
  location               = var.region
  format                 = "DOCKER"
  description            = "Project image used by the pipeline components, the migration job and the Vertex AI serving container."
  cleanup_policy_dry_run = false

  docker_config {
    immutable_tags = false
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"

    condition {
      tag_state  = "UNTAGGED"
      older_than = local.artifact_retention
    }
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = 10
    }
  }

  depends_on = [google_project_service.apis]
}

# Where Cloud Build puts the functions' images (build_config.docker_repository):
# our own repository, so the build account writes here and nowhere else.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Holds only the functions' build images (no secrets, no data); Google-managed encryption, no customer key ring is provisioned.
  repository_id          = "${var.name_prefix}-functions"
  location               = var.region
  format                 = "DOCKER"
  description            = "Cloud Functions build images (written by the functions-build SA only)."
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"

    condition {
      tag_state  = "ANY"
      older_than = local.artifact_retention
    }
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = 5
    }
  }

  depends_on = [google_project_service.apis]
}

# Vertex AI's template registry: `potability pipeline publish` uploads the compiled
# pipeline here (package water-potability-training, tags: content hash and latest)
# and the schedule names it by URL (templateUri). Only the scheduler reads it.
resource "google_artifact_registry_repository" "pipelines" {
  #checkov:skip=CKV_GCP_84:Holds only the compiled pipeline definition (no secrets, no data); Google-managed encryption, no customer key ring is provisioned.
  repository_id          = "${var.name_prefix}-pipelines"
  location               = var.region
  format                 = "KFP"
  description            = "Compiled training pipeline (Vertex AI template registry)."
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"

    condition {
      tag_state  = "UNTAGGED"
      older_than = local.artifact_retention
    }
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
