# The inference log's hourly maintenance (potability/inference/log.py,
# docs/inference-log.md): `potability maintenance` creates the partitions of the
# next days, prunes request keys older than the idempotency window, and exports
# every day older than var.inference_retention_days to Parquet in the archive
# bucket - read back and verified - before it drops that day's partition, and
# rolls up the last hours' counts and drift cells (sql/015) that `potability qc`
# reads: hourly, so qc never has a day of cells to fill itself (docs/scale.md).
#
# A Cloud Run job in the project image, like the migration job (migrate.tf): it
# is schema work (it creates and drops partitions as the owner role water_owner),
# so it runs as the migrator service account, which also may create - not
# replace, not delete - objects in the archive bucket (iam.tf). Cloud Scheduler
# starts it hourly through the Cloud Run Admin API v2 `jobs.run` method
# (POST v2/{name}:run, body RunJobRequest; run.v2 discovery document) with an
# OAuth token of the scheduler service account, which may run this job only.
locals {
  inference_archive_uri = "gs://${local.archive_bucket}/${var.inference_archive_prefix}"
}

resource "google_cloud_run_v2_job" "maintenance" {
  count = local.migrate_job ? 1 : 0

  name                = "${var.name_prefix}-maintenance"
  location            = var.region
  deletion_protection = false

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account       = google_service_account.sa["migrator"].email
      timeout               = "3600s"
      max_retries           = 1
      execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

      containers {
        image = local.project_image
        args  = ["potability", "maintenance"]

        env {
          name  = "POTABILITY_ENV"
          value = "gcp"
        }
        env {
          name  = "CLOUD_SQL_INSTANCE"
          value = google_sql_database_instance.main.connection_name
        }
        env {
          name  = "DB_NAME"
          value = google_sql_database.app.name
        }
        env {
          name  = "DB_USER"
          value = local.db_user["migrator"]
        }
        env {
          name  = "DB_IAM_AUTH"
          value = "true"
        }
        env {
          name  = "INFERENCE_RETENTION_DAYS"
          value = tostring(var.inference_retention_days)
        }
        env {
          name  = "INFERENCE_ARCHIVE_URI"
          value = local.inference_archive_uri
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "1Gi"
          }
        }
      }

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.vpc.name
          subnetwork = google_compute_subnetwork.main.name
          tags       = ["maintenance"]
        }
      }
    }
  }

  depends_on = [
    time_sleep.iam_propagation,
    google_project_iam_member.sa,
    google_sql_user.sa,
    google_sql_database.app,
    google_storage_bucket_iam_member.sa,
  ]
}

# The scheduler may start this job - on this job only: "Cloud Run Invoker
# (roles/run.invoker) on the Cloud Run job" executes it (Cloud Run docs, "Execute
# jobs on a schedule", Required roles).
resource "google_cloud_run_v2_job_iam_member" "maintenance_scheduler" {
  count = local.migrate_job ? 1 : 0

  project  = var.project_id
  location = google_cloud_run_v2_job.maintenance[0].location
  name     = google_cloud_run_v2_job.maintenance[0].name
  role     = "roles/run.invoker"
  member   = google_service_account.sa["scheduler"].member
}

resource "google_cloud_scheduler_job" "maintenance" {
  count = local.migrate_job ? 1 : 0

  name        = "${var.name_prefix}-maintenance"
  region      = var.region
  schedule    = var.maintenance_schedule
  time_zone   = var.schedule_time_zone
  description = "Daily inference-log maintenance: partitions ahead, request keys pruned, archive + drop past retention"

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.maintenance[0].name}:run"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({}))

    oauth_token {
      service_account_email = google_service_account.sa["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.maintenance_scheduler]
}
