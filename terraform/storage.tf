# Four buckets, one per writer (main.tf): every storage grant is then a whole
# bucket (iam.tf), and nobody who writes MLflow artifacts can replace what the
# pipeline or the function build read. All: uniform access, public access
# prevention, versioning; noncurrent versions are deleted after
# var.artifact_retention_days (object names are unique - content hashes, run
# ids - so a "keep N newer versions" rule would never fire).
locals {
  buckets = {
    main          = { name = local.bucket_name, purpose = "function source and the EDA notebook" }
    pipeline_root = { name = local.pipeline_root_bucket, purpose = "Vertex AI pipeline root (component outputs, model staging)" }
    mlflow        = { name = local.mlflow_artifacts_bucket, purpose = "MLflow artifact store" }
    archive       = { name = local.archive_bucket, purpose = "inference-log archive (maintenance.tf)" }
  }
}

resource "google_storage_bucket" "buckets" {
  #checkov:skip=CKV_GCP_62:Data-access audit logs (Cloud Audit Logs) cover these buckets; legacy usage-log buckets would need their own bucket with the same finding.
  for_each = local.buckets

  name                        = each.value.name
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Teardown: README.md "Tear down" (false keeps `terraform destroy` from deleting data by accident).
  force_destroy = var.bucket_force_destroy
  labels        = { purpose = replace(each.key, "_", "-") }

  versioning {
    enabled = true
  }

  # Overwritten or deleted objects are kept var.artifact_retention_days, then deleted.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.artifact_retention_days
      with_state                 = "ARCHIVED"
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
  bucket       = google_storage_bucket.buckets["main"].name
  source       = "${path.module}/../notebooks/eda.ipynb"
  content_type = "application/x-ipynb+json"
}
