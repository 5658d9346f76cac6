# One bucket: pipeline root, compiled pipeline, MLflow artifacts, function
# sources and the EDA notebook, each under its own prefix.
resource "google_storage_bucket" "main" {
  #checkov:skip=CKV_GCP_62:Data-access audit logs (Cloud Audit Logs) cover this bucket; legacy usage-log buckets would need their own bucket with the same finding.
  name                        = local.bucket_name
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Old versions of pipeline outputs are not worth keeping forever.
  lifecycle_rule {
    condition {
      num_newer_versions = 5
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# The EDA notebook, next to the artifacts it explains.
resource "google_storage_bucket_object" "eda_notebook" {
  name         = "notebooks/eda.ipynb"
  bucket       = google_storage_bucket.main.name
  source       = "${path.module}/../notebooks/eda.ipynb"
  content_type = "application/x-ipynb+json"
}
