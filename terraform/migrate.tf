# Migrations as a job: `potability migrate --seed` (schema water from sql/, CREATE
# EXTENSION pgaudit, the NOLOGIN owner role water_owner, the access roles with
# ALTER DEFAULT PRIVILEGES, and each service's IAM database user made a member of
# its role - DB_ROLE_MEMBERS; then the public data set seeded once, idempotently,
# into the training table) runs in the project image as the migrator service
# account, whose IAM database user is a cloudsqlsuperuser (sql.tf). It reaches
# Cloud SQL's private IP through Direct VPC egress like the functions.
# `make gcp-deploy` executes it after pushing the image (README.md).
#
# The job exists once the image is pinned by digest (var.image_digest, set by
# `make gcp-deploy`): Cloud Run resolves a job's image when the job is created,
# and before the first build there is no image to resolve.
locals {
  migrate_job = var.image_digest != ""

  # service -> IAM database user, for the memberships `potability migrate` grants.
  # The operators' IAM group (operators.tf) is a database user of its own name.
  db_role_members = join(",", concat(
    [for k in ["predict", "samples", "status", "pipelines", "mlflow"] : "${k}=${local.db_user[k]}"],
    var.operators == "" ? [] : ["operators=${var.operators}", "model-job=${local.db_user["model-job"]}"],
  ))
}

resource "google_cloud_run_v2_job" "migrate" {
  count = local.migrate_job ? 1 : 0

  name     = "${var.name_prefix}-migrate"
  location = var.region
  # Teardown: `terraform destroy` may delete it (provider 8.x defaults to true).
  deletion_protection = false

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account       = google_service_account.sa["migrator"].email
      timeout               = "900s"
      max_retries           = 0
      execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

      containers {
        image = local.project_image
        # --seed: the public data set into the training table, idempotently (cli.py);
        # tests/test_image.py runs exactly these args from an image-built environment.
        args = ["potability", "migrate", "--seed"]

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
          name  = "DB_ROLE_MEMBERS"
          value = local.db_role_members
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "1Gi"
          }
        }
      }

      # Names, not ids: provider docs r/cloud_run_v2_job, "network_interfaces".
      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.vpc.name
          subnetwork = google_compute_subnetwork.main.name
          tags       = ["migrate"]
        }
      }
    }
  }

  depends_on = [
    time_sleep.iam_propagation,
    google_project_iam_member.sa,
    google_sql_user.sa,
    google_sql_database.app,
  ]
}

# Engineers start the job (`gcloud run jobs execute --wait`, make gcp-deploy) and
# watch its executions; on this job only.
resource "google_cloud_run_v2_job_iam_member" "engineers" {
  for_each = local.migrate_job ? {
    for pair in setproduct(var.engineers, ["roles/run.invoker", "roles/run.viewer"]) : "${pair[0]}/${pair[1]}" => { member = pair[0], role = pair[1] }
  } : {}

  project  = var.project_id
  location = google_cloud_run_v2_job.migrate[0].location
  name     = google_cloud_run_v2_job.migrate[0].name
  role     = each.value.role
  member   = each.value.member
}
