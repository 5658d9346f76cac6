# The operators' path without a VPN (docs/operating-the-model.md): `potability model ...` as a
# Cloud Run job from the project image, placed like the pipeline's steps - Cloud SQL's private
# IP through the connector (IAM database login as the job's own account) and MLflow's private
# address, from a subnet of its own that the MLflow firewall admits (network.tf). An operator
# runs it from anywhere with gcloud:
#
#   make gcp-model ARGS='rollback --reason "live precision fell to 41% on lab samples"'
#
# which is `gcloud run jobs execute <prefix>-model --args=potability,model,... --wait`
# (potability/gcp/model_job.py). The job's arguments are overridden per execution, which needs
# run.jobs.runWithOverrides on the job (https://cloud.google.com/run/docs/reference/rest/v2/
# projects.locations.jobs/run, "overrides"): the operators group gets Cloud Run Jobs Executor
# With Overrides (roles/run.jobsExecutorWithOverrides) and Cloud Run Viewer (to follow the
# execution, --wait) on this job only. Run as model-job, the command is recorded in
# water.model_changes under that account; the operator who started it is in the Cloud Run
# audit log of the execution (run.googleapis.com, jobs.run, principalEmail).
#
# The job exists once the image is pinned (as the migration job, migrate.tf) and only if
# there are operators (var.operators).
locals {
  model_job = var.image_digest != "" && var.operators != ""

  model_job_project_roles = local.model_job ? [
    "custom:model_operator", "roles/cloudsql.client", "roles/cloudsql.instanceUser",
    "roles/logging.logWriter",
  ] : []
  model_job_grant_keys = local.model_job ? concat(
    [for r in local.model_job_project_roles : "model-job/${r}"],
    ["model-job/mlflow-bucket", "model-job/mlflow-secret"],
  ) : []

  # What `potability model` reads (potability/config.py), as docs/operating-the-model.md lists
  # it for an operator's machine; MLFLOW_TRACKING_PASSWORD comes from the secret (below).
  model_job_env = {
    POTABILITY_ENV           = "gcp"
    ENDPOINT_MODE            = "vertex"
    CLOUD_SQL_INSTANCE       = google_sql_database_instance.main.connection_name
    DB_NAME                  = google_sql_database.app.name
    DB_USER                  = local.db_user["model-job"]
    DB_IAM_AUTH              = "true"
    GOOGLE_CLOUD_PROJECT     = var.project_id
    GOOGLE_CLOUD_REGION      = var.region
    VERTEX_ENDPOINT_ID       = google_vertex_ai_endpoint.main.name
    PIPELINE_ROOT            = local.pipeline_root
    MODEL_NAME               = var.model_name
    PROMOTION_APPROVAL       = var.promotion_approval
    CANDIDATE_EXPIRY_DAYS    = tostring(var.candidate_expiry_days)
    MLFLOW_TRACKING_URI      = local.mlflow_tracking_uri
    MLFLOW_TRACKING_USERNAME = "pipelines"
  }
}

# The operators' grants (operators.tf), to the job's account: the same command needs the same.
resource "google_project_iam_member" "model_job" {
  for_each = toset(local.model_job_project_roles)

  project = var.project_id
  role    = each.value == "custom:model_operator" ? google_project_iam_custom_role.model_operator[0].name : each.value
  member  = google_service_account.sa["model-job"].member
}

resource "google_secret_manager_secret_iam_member" "model_job" {
  count = local.model_job ? 1 : 0

  secret_id = google_secret_manager_secret.mlflow["pipelines"].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa["model-job"].member
}

resource "google_storage_bucket_iam_member" "model_job" {
  count = local.model_job ? 1 : 0

  bucket = google_storage_bucket.buckets["mlflow"].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.sa["model-job"].member
}

resource "google_cloud_run_v2_job" "model" {
  count = local.model_job ? 1 : 0

  name                = "${var.name_prefix}-model"
  location            = var.region
  deletion_protection = false

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.sa["model-job"].email
      # A serving switch waits for the new deployed model to answer (components/vertex.py):
      # Vertex AI takes minutes to deploy; an hour is the bound, not the expectation.
      timeout               = "3600s"
      max_retries           = 0 # a model change is never repeated behind the operator's back
      execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

      containers {
        image = local.project_image
        # Overridden per execution (make gcp-model); without overrides it only reports.
        args = ["potability", "model", "status"]

        dynamic "env" {
          for_each = local.model_job_env
          content {
            name  = env.key
            value = env.value
          }
        }
        env {
          name = "MLFLOW_TRACKING_PASSWORD"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.mlflow["pipelines"].secret_id
              version = "latest"
            }
          }
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "2Gi"
          }
        }
      }

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.vpc.name
          subnetwork = google_compute_subnetwork.jobs.name
          tags       = ["model-job"]
        }
      }
    }
  }

  depends_on = [
    time_sleep.iam_propagation,
    google_sql_user.sa,
    google_secret_manager_secret_iam_member.model_job,
  ]
}

resource "google_cloud_run_v2_job_iam_member" "operators" {
  for_each = toset(local.model_job ? ["roles/run.jobsExecutorWithOverrides", "roles/run.viewer"] : [])

  project  = var.project_id
  location = google_cloud_run_v2_job.model[0].location
  name     = google_cloud_run_v2_job.model[0].name
  role     = each.value
  member   = local.operators_member
}
